// XEP-0199: pings to the server and to bare JIDs are answered by the server.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { errorOf, FeatureKit } from './test-kit.ts';
import ping from './xep-0199-ping.ts';

const BALCONY = 'juliet@example.com/balcony';
let kit: FeatureKit;

beforeEach(async () => {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [ping],
  );
});

afterEach(async () => {
  await kit.close();
});

describe('XEP-0199 ping', () => {
  it('answers a ping to the server with an empty result', async () => {
    expect(
      await kit.iq(BALCONY, '<iq type="get" id="p1" to="example.com"><ping xmlns="urn:xmpp:ping"/></iq>'),
    ).toBe(`<iq type="result" id="p1" to="${BALCONY}" from="example.com"/>`);
  });

  it('answers a ping to an account on its behalf', async () => {
    expect(
      await kit.iq(
        BALCONY,
        '<iq type="get" id="p2" to="romeo@example.com"><ping xmlns="urn:xmpp:ping"/></iq>',
      ),
    ).toBe(`<iq type="result" id="p2" to="${BALCONY}" from="romeo@example.com"/>`);
  });

  it('refuses a ping of type set', async () => {
    const reply = await kit.iq(
      BALCONY,
      '<iq type="set" id="p3" to="example.com"><ping xmlns="urn:xmpp:ping"/></iq>',
    );
    expect(errorOf(reply)).toBe('cancel service-unavailable');
  });
});
