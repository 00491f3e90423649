// XEP-0092: the server's name and version, with the operating system only when configured.
import { release, type } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import type { ConfigInput } from '@starling/core';
import { openSqliteStore } from '@starling/store';
import { FeatureKit } from './test-kit.ts';
import version from './xep-0092-version.ts';

const BALCONY = 'juliet@example.com/balcony';
const QUERY = '<iq type="get" id="v1" to="example.com"><query xmlns="jabber:iq:version"/></iq>';
let kit: FeatureKit;

async function open(config: ConfigInput): Promise<FeatureKit> {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [version],
    { config },
  );
  return kit;
}

afterEach(async () => {
  await kit.close();
});

describe('XEP-0092 software version', () => {
  it('answers with the configured name and version and no operating system', async () => {
    await open({ server: { name: 'Starling', version: '9.8.7' } });
    expect(await kit.iq(BALCONY, QUERY)).toBe(
      `<iq type="result" id="v1" to="${BALCONY}" from="example.com"><query xmlns="jabber:iq:version">` +
        '<name>Starling</name><version>9.8.7</version></query></iq>',
    );
  });

  it('adds the operating system when showOs is set', async () => {
    await open({ server: { name: 'Starling', version: '1', showOs: true } });
    expect(await kit.iq(BALCONY, QUERY)).toBe(
      `<iq type="result" id="v1" to="${BALCONY}" from="example.com"><query xmlns="jabber:iq:version">` +
        `<name>Starling</name><version>1</version><os>${type()} ${release()}</os></query></iq>`,
    );
  });
});
