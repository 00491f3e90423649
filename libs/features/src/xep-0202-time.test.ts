// XEP-0202: the server's time in UTC and its offset, in XEP-0082 formats.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { parseTrusted } from '@starling/xmpp';
import { FeatureKit } from './test-kit.ts';
import time, { timezoneOffset } from './xep-0202-time.ts';

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
    [time],
  );
});

afterEach(async () => {
  await kit.close();
});

describe('XEP-0202 entity time', () => {
  it('answers with the offset and the UTC time', async () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const reply = parseTrusted(
      await kit.iq(BALCONY, '<iq type="get" id="t1" to="example.com"><time xmlns="urn:xmpp:time"/></iq>'),
    );
    const after = Date.now();
    expect(reply.attrs).toEqual({ type: 'result', id: 't1', to: BALCONY, from: 'example.com' });
    const payload = reply.getChild('time', 'urn:xmpp:time');
    expect(payload?.getChildText('tzo')).toBe(timezoneOffset(new Date()));
    const utc = payload?.getChildText('utc') ?? '';
    expect(utc).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(utc)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(utc)).toBeLessThanOrEqual(after);
  });

  it('formats offsets east and west of UTC', () => {
    const at = (minutesWest: number): Date => ({ getTimezoneOffset: () => minutesWest }) as Date;
    expect(timezoneOffset(at(0))).toBe('+00:00');
    expect(timezoneOffset(at(-120))).toBe('+02:00');
    expect(timezoneOffset(at(330))).toBe('-05:30');
  });
});
