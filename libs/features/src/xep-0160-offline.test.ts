// XEP-0160 and XEP-0203: which messages wait offline, the delay stamp, the queue limit, and the flush.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import type { Role } from '@starling/core';
import type { SessionRecord } from '@starling/ports';
import { openSqliteStore } from '@starling/store';
import { parseTrusted } from '@starling/xmpp';
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

  it('keeps what could not be delivered', async () => {
    await open('presence');
    await queue('one');
    const session = await kit.bind(BALCONY);
    kit.vanish(BALCONY);
    await initialPresence(session);
    expect(await stored()).toHaveLength(1);
  });
});
