// XEP-0160 and XEP-0203: which messages wait offline, the delay stamp, the queue limit, and the flush.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { decodeEnvelope, TOPIC_PRESENCE, type Role } from '@starling/core';
import type { SessionRecord } from '@starling/ports';
import { openSqliteStore } from '@starling/store';
import { Jid, parseTrusted } from '@starling/xmpp';
import { errorOf, FeatureKit } from './test-kit.ts';
import offline from './xep-0160-offline.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ORCHARD = 'romeo@example.com/orchard';
const NOW = Date.parse('2024-05-01T12:00:00.000Z');
let kit: FeatureKit;

async function open(role: Role): Promise<void> {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [offline],
    { role, config: { limits: { offlineMessages: 2 } } },
  );
  await kit.addUser('juliet');
  await kit.addUser('romeo');
  await kit.bind(ORCHARD);
}

async function stored(): Promise<string[]> {
  return (await kit.store.offline.list('juliet')).map((message) => message.stanza);
}

afterEach(async () => {
  vi.useRealTimers();
  await kit.close();
});

describe('storing (router)', () => {
  async function route(stanza: string): Promise<void> {
    await kit.routing.route(parseTrusted(stanza));
  }

  it('stores chat and normal messages with a body, stamped with a delay from the server', async () => {
    await open('router');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
    await route(`<message type="chat" id="c" from="${ORCHARD}" to="${JULIET}"><body>one</body></message>`);
    await route(`<message from="${ORCHARD}" to="${BALCONY}"><body>two</body></message>`);
    const delay = '<delay xmlns="urn:xmpp:delay" from="example.com" stamp="2024-05-01T12:00:00.000Z"/>';
    expect(await stored()).toEqual([
      `<message type="chat" id="c" from="${ORCHARD}" to="${JULIET}"><body>one</body>${delay}</message>`,
      `<message from="${ORCHARD}" to="${BALCONY}"><body>two</body>${delay}</message>`,
    ]);
    expect(kit.take(ORCHARD)).toEqual([]);
  });

  it('keeps nothing of headline and groupchat messages, and drops bodiless chat states silently', async () => {
    await open('router');
    await route(`<message type="headline" from="${ORCHARD}" to="${JULIET}"><body>news</body></message>`);
    await route(
      `<message type="chat" from="${ORCHARD}" to="${JULIET}"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`,
    );
    await route(`<message type="groupchat" id="g" from="${ORCHARD}" to="${JULIET}"><body>x</body></message>`);
    expect(await stored()).toEqual([]);
    expect(kit.take(ORCHARD).map(errorOf)).toEqual(['cancel service-unavailable']);
  });

  it('tells the presence role, on the recipient’s key, when it stored a message for an available resource', async () => {
    await open('router');
    // Routing found no available resource, then one went available before the message was stored: its
    // initial presence may have handed the stored messages over already.
    await kit.bind(BALCONY, { available: true, priority: 0 });
    const stanza = parseTrusted(`<message from="${ORCHARD}" to="${JULIET}"><body>late</body></message>`);
    await kit.host.hooks.run('message-undeliverable', { stanza, to: Jid.parse(JULIET) });
    expect(await stored()).toHaveLength(1);
    const told = kit.published.filter((record) => record.topic === TOPIC_PRESENCE);
    expect(told.map((record) => [record.key, decodeEnvelope(record.value)])).toEqual([
      [
        JULIET,
        {
          t: 'offline-stored',
          id: expect.any(String) as string,
          ts: expect.any(Number) as number,
          owner: JULIET,
        },
      ],
    ]);
  });

  it('tells nobody when the recipient has no resource that takes messages', async () => {
    await open('router');
    await kit.bind(BALCONY, { available: false });
    await kit.bind(`${JULIET}/garden`, { available: true, priority: -1 });
    const stanza = parseTrusted(`<message from="${ORCHARD}" to="${JULIET}"><body>later</body></message>`);
    await kit.host.hooks.run('message-undeliverable', { stanza, to: Jid.parse(JULIET) });
    expect(await stored()).toHaveLength(1);
    expect(kit.published.filter((record) => record.topic === TOPIC_PRESENCE)).toEqual([]);
  });

  it('bounces other bodiless messages, which it does not store', async () => {
    await open('router');
    await route(
      `<message id="r" from="${ORCHARD}" to="${JULIET}"><received xmlns="urn:xmpp:receipts" id="x"/></message>`,
    );
    expect(await stored()).toEqual([]);
    expect(kit.take(ORCHARD).map(errorOf)).toEqual(['cancel service-unavailable']);
  });

  it('bounces messages beyond the queue limit', async () => {
    await open('router');
    for (const id of ['1', '2', '3']) {
      await route(
        `<message type="chat" id="${id}" from="${ORCHARD}" to="${JULIET}"><body>${id}</body></message>`,
      );
    }
    expect(await stored()).toHaveLength(2);
    const bounced = kit.take(ORCHARD);
    expect(bounced.map(errorOf)).toEqual(['cancel service-unavailable']);
    expect(parseTrusted(bounced[0]!).attrs.id).toBe('3');
  });
});

describe('flushing (presence)', () => {
  async function initialPresence(session: SessionRecord, presence = '<presence/>'): Promise<void> {
    await kit.host.hooks.run('initial-presence', { session, stanza: parseTrusted(presence) });
  }

  async function queue(...bodies: string[]): Promise<void> {
    for (const body of bodies) {
      await kit.store.offline.push(
        'juliet',
        `<message to="${JULIET}"><body>${body}</body></message>`,
        NOW,
        10,
      );
    }
  }

  it('delivers stored messages oldest first to a resource with a non-negative priority, then forgets them', async () => {
    await open('presence');
    await queue('one', 'two');
    const session = await kit.bind(BALCONY);
    await initialPresence(session, '<presence><priority>0</priority></presence>');
    expect(kit.take(BALCONY)).toEqual([
      `<message to="${JULIET}"><body>one</body></message>`,
      `<message to="${JULIET}"><body>two</body></message>`,
    ]);
    expect(await stored()).toEqual([]);
  });

  it('keeps them for a resource with a negative priority', async () => {
    await open('presence');
    await queue('one');
    const session = await kit.bind(BALCONY);
    await initialPresence(session, '<presence><priority>-1</priority></presence>');
    expect(kit.take(BALCONY)).toEqual([]);
    expect(await stored()).toHaveLength(1);
  });

  it('hands over what was stored after an initial presence once the router tells, to the highest priority', async () => {
    await open('presence');
    const balcony = await kit.bind(BALCONY);
    await kit.bind(`${JULIET}/garden`, { available: true, priority: 3 });
    await kit.bind(`${JULIET}/hidden`, { available: true, priority: -1 });
    await initialPresence(balcony);
    expect(kit.take(BALCONY)).toEqual([]);
    await queue('late');
    await kit.host.hooks.run('offline-stored', { owner: Jid.parse(JULIET) });
    expect(kit.take(`${JULIET}/garden`)).toEqual([`<message to="${JULIET}"><body>late</body></message>`]);
    expect(kit.take(BALCONY)).toEqual([]);
    expect(await stored()).toEqual([]);
    // Told again (a replay, or a second message's word): nothing is handed over twice.
    await kit.host.hooks.run('offline-stored', { owner: Jid.parse(JULIET) });
    expect(kit.take(`${JULIET}/garden`)).toEqual([]);
  });

  it('keeps what was stored when no resource takes messages by then', async () => {
    await open('presence');
    await kit.bind(`${JULIET}/hidden`, { available: true, priority: -1 });
    await queue('late');
    await kit.host.hooks.run('offline-stored', { owner: Jid.parse(JULIET) });
    expect(kit.take(`${JULIET}/hidden`)).toEqual([]);
    expect(await stored()).toHaveLength(1);
  });

  it('keeps what could not be delivered', async () => {
    await open('presence');
    await queue('one');
    const session = await kit.bind(BALCONY);
    kit.vanish(BALCONY);
    await initialPresence(session);
    expect(await stored()).toHaveLength(1);
  });
});
