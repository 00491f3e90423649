// XEP-0012: server uptime, and an account's last logout for itself and its presence subscribers only.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { errorOf, FeatureKit } from './test-kit.ts';
import last from './xep-0012-last.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ORCHARD = 'romeo@example.com/orchard';
const KITCHEN = 'nurse@example.com/kitchen';
const QUERY = `<iq type="get" id="l1" to="${JULIET}"><query xmlns="jabber:iq:last"/></iq>`;
const START = Date.parse('2024-05-01T12:00:00Z');
let kit: FeatureKit;

/** Moves the clock the feature reads; only Date is faked, so the adapters' own scheduling is untouched. */
function clockAt(ms: number): void {
  vi.setSystemTime(ms);
}

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  clockAt(START);
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [last],
  );
  for (const user of ['juliet', 'romeo', 'nurse']) await kit.addUser(user);
  await kit.store.rosters.setItem('juliet', {
    jid: 'romeo@example.com',
    subscription: 'both',
    askOut: false,
    approved: false,
    groups: [],
  });
});

afterEach(async () => {
  vi.useRealTimers();
  await kit.close();
});

describe('XEP-0012 last activity', () => {
  it('answers the server uptime in whole seconds', async () => {
    clockAt(START + 123_900);
    expect(
      await kit.iq(BALCONY, '<iq type="get" id="u" to="example.com"><query xmlns="jabber:iq:last"/></iq>'),
    ).toBe(
      `<iq type="result" id="u" to="${BALCONY}" from="example.com"><query xmlns="jabber:iq:last" seconds="123"/></iq>`,
    );
  });

  it('answers a subscriber with the time since the last logout and its status', async () => {
    await kit.store.lastActivity.set('juliet', { at: START - 903_000, status: 'Heading Home' });
    expect(await kit.iq(ORCHARD, QUERY)).toBe(
      `<iq type="result" id="l1" to="${ORCHARD}" from="${JULIET}">` +
        '<query xmlns="jabber:iq:last" seconds="903">Heading Home</query></iq>',
    );
  });

  it('answers the account itself, and 0 seconds while a resource is available', async () => {
    await kit.store.lastActivity.set('juliet', { at: START - 10_000, status: '' });
    await kit.bind(BALCONY, { available: false });
    expect(await kit.iq(BALCONY, '<iq type="get" id="l2"><query xmlns="jabber:iq:last"/></iq>')).toBe(
      `<iq type="result" id="l2" to="${BALCONY}"><query xmlns="jabber:iq:last" seconds="10"/></iq>`,
    );
    await kit.bind(`${JULIET}/chamber`);
    expect(await kit.iq(ORCHARD, QUERY)).toBe(
      `<iq type="result" id="l1" to="${ORCHARD}" from="${JULIET}"><query xmlns="jabber:iq:last" seconds="0"/></iq>`,
    );
  });

  it('refuses anyone not subscribed to the account', async () => {
    await kit.store.lastActivity.set('juliet', { at: Date.now(), status: '' });
    expect(errorOf(await kit.iq(KITCHEN, QUERY))).toBe('auth forbidden');
  });

  it('answers item-not-found when the account never logged out', async () => {
    expect(errorOf(await kit.iq(ORCHARD, QUERY))).toBe('cancel item-not-found');
  });
});
