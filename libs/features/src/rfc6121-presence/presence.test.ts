// RFC 6121 §4: initial and subsequent presence, probes, directed presence, unavailable and the end of a session.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { defineFeature, type Feature } from '@starling/core';
import type { Delivery, SessionRecord, SessionRegistry } from '@starling/ports';
import { parseTrusted } from '@starling/xmpp';
import { type TestSession, World } from './test-world.ts';

const JULIET = 'juliet@example.com';
const ROMEO = 'romeo@example.com';
const NURSE = 'nurse@example.com';
const BENVOLIO = 'benvolio@example.com';

let world: World | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function open(
  features: readonly Feature[] = [],
  delivery: Delivery = new LocalDelivery(),
  registry: SessionRegistry = new MemorySessionRegistry(),
): Promise<World> {
  world = await World.open(
    { bus: new MemoryStanzaBus(), registry, delivery, store: await openSqliteStore(':memory:') },
    { features },
  );
  for (const user of ['juliet', 'romeo', 'nurse', 'benvolio']) await world.account(user);
  return world;
}

/** Binds a session and sends initial presence; its inbox starts empty. */
async function online(w: World, jid: string, presence = '<presence/>'): Promise<TestSession> {
  const session = await w.connect(jid);
  await w.send(session, presence);
  w.take(jid);
  return session;
}

function sorted(lines: string[]): string[] {
  return [...lines].sort();
}

async function record(w: World, jid: string): Promise<SessionRecord | undefined> {
  return w.backends.registry.get(jid);
}

/** Subscriptions both ways between Juliet and Romeo. */
async function lovers(w: World): Promise<void> {
  await w.setItem('juliet', ROMEO, 'both');
  await w.setItem('romeo', JULIET, 'both');
}

describe('initial presence (§4.2, §4.3)', () => {
  it('goes to subscribers, probes the contacts the user is subscribed to, and stores the session state', async () => {
    const w = await open();
    await lovers(w);
    // The nurse sees Juliet but is not seen; Juliet sees Benvolio, who is offline.
    await w.setItem('juliet', NURSE, 'from');
    await w.setItem('nurse', JULIET, 'to');
    await w.setItem('juliet', BENVOLIO, 'to');
    await w.setItem('benvolio', JULIET, 'from');
    await w.backends.store.lastActivity.set('benvolio', {
      at: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
      status: 'Gone to Mantua',
    });
    const romeo = await w.connect(`${ROMEO}/orchard`);
    await w.send(romeo, '<presence><show>away</show></presence>');
    // Juliet is offline and never logged out: a plain unavailable answers Romeo's probe.
    expect(w.take(romeo.jid)).toEqual([
      `presence available ${ROMEO}/orchard -> ${ROMEO}/orchard [show:away]`,
      `presence unavailable ${JULIET} -> ${ROMEO}/orchard`,
    ]);
    const nurse = await online(w, `${NURSE}/chamber`);

    const juliet = await w.connect(`${JULIET}/balcony`);
    await w.send(
      juliet,
      "<presence id='p1'><show>chat</show><status>Wherefore?</status><priority>5</priority></presence>",
    );
    const payload = '[show:chat status:Wherefore? priority:5]';
    expect(w.take(romeo.jid)).toEqual([`presence available ${JULIET}/balcony -> ${ROMEO} ${payload}`]);
    expect(w.take(nurse.jid)).toEqual([`presence available ${JULIET}/balcony -> ${NURSE} ${payload}`]);
    expect(sorted(w.take(juliet.jid))).toEqual(
      sorted([
        `presence available ${JULIET}/balcony -> ${JULIET}/balcony ${payload}`,
        `presence available ${ROMEO}/orchard -> ${JULIET}/balcony [show:away]`,
        `presence unavailable ${BENVOLIO} -> ${JULIET}/balcony [status:Gone to Mantua delay:2024-01-02T03:04:05Z]`,
      ]),
    );
    const stored = await record(w, juliet.jid);
    expect(stored).toMatchObject({ available: true, priority: 5 });
    const presence = parseTrusted(stored!.presence!);
    expect(presence.attrs).toMatchObject({ from: `${JULIET}/balcony`, id: 'p1' });
    expect(presence.attrs.to).toBeUndefined();
    expect(presence.getChildText('status')).toBe('Wherefore?');
  });

  it('shows the new session its siblings, and the siblings the new session', async () => {
    const w = await open();
    const balcony = await online(w, `${JULIET}/balcony`, '<presence><show>dnd</show></presence>');
    const garden = await w.connect(`${JULIET}/garden`);
    await w.send(garden, '<presence><priority>-1</priority></presence>');
    expect(w.take(garden.jid)).toEqual([
      `presence available ${JULIET}/garden -> ${JULIET}/garden [priority:-1]`,
      `presence available ${JULIET}/balcony -> ${JULIET}/garden [show:dnd]`,
    ]);
    expect(w.take(balcony.jid)).toEqual([
      `presence available ${JULIET}/garden -> ${JULIET}/balcony [priority:-1]`,
    ]);
    expect(await record(w, garden.jid)).toMatchObject({ available: true, priority: -1 });
  });

  it('runs the initial-presence hook once per session, with the updated session', async () => {
    const seen: SessionRecord[] = [];
    const w = await open([
      defineFeature({
        id: 'test-initial-presence',
        spec: { title: 'test' },
        roles: ['presence'],
        setup: ({ hooks }) => hooks.on('initial-presence', ({ session }) => void seen.push(session)),
      }),
    ]);
    const juliet = await w.connect(`${JULIET}/balcony`);
    await w.send(juliet, '<presence/>');
    await w.send(juliet, '<presence><show>away</show></presence>');
    expect(seen.map((s) => [s.jid, s.available])).toEqual([[`${JULIET}/balcony`, true]]);
  });

  it('probe answers go through routing, so an inbound hook can stop them', async () => {
    const w = await open([
      defineFeature({
        id: 'test-block',
        spec: { title: 'test' },
        roles: ['presence'],
        setup: ({ hooks }) =>
          hooks.on('stanza-inbound', ({ from, to }) =>
            from.bare().toString() === ROMEO && to.bare().toString() === JULIET ? 'handled' : undefined,
          ),
      }),
    ]);
    await lovers(w);
    const romeo = await online(w, `${ROMEO}/orchard`);
    const juliet = await w.connect(`${JULIET}/balcony`);
    await w.send(juliet, '<presence/>');
    // Only her own presence comes back; Romeo's answer to her probe was stopped.
    expect(w.take(juliet.jid)).toEqual([`presence available ${JULIET}/balcony -> ${JULIET}/balcony`]);
    expect(w.take(romeo.jid)).toEqual([`presence available ${JULIET}/balcony -> ${ROMEO}`]);
  });

  it('a failing initial-presence hook answers internal-server-error and leaves the consumer running', async () => {
    const w = await open([
      defineFeature({
        id: 'test-broken-hook',
        spec: { title: 'test' },
        roles: ['presence'],
        setup: ({ hooks }) =>
          hooks.on('initial-presence', () => {
            throw new Error('offline storage is down');
          }),
      }),
    ]);
    const juliet = await w.connect(`${JULIET}/balcony`);
    await w.send(juliet, "<presence id='p1'/>");
    expect(w.take(juliet.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony`,
      `presence error - -> ${JULIET}/balcony [error:internal-server-error]`,
    ]);
    await w.send(juliet, '<presence><show>away</show></presence>');
    expect(await record(w, juliet.jid)).toMatchObject({ available: true });
    expect(w.failures).toEqual([]);
  });
});

describe('priority and syntax (§4.7)', () => {
  const bad = [
    '<priority>high</priority>',
    '<priority>128</priority>',
    '<priority>-129</priority>',
    '<priority>1.5</priority>',
    '<priority/>',
    '<priority>1</priority><priority>2</priority>',
    '<show>sleeping</show>',
  ];
  for (const payload of bad) {
    it(`answers bad-request to ${payload} and changes nothing`, async () => {
      const w = await open();
      await lovers(w);
      const romeo = await online(w, `${ROMEO}/orchard`);
      const juliet = await w.connect(`${JULIET}/balcony`);
      await w.send(juliet, `<presence id='p1'>${payload}</presence>`);
      expect(w.take(juliet.jid)).toEqual([`presence error - -> ${JULIET}/balcony [error:bad-request]`]);
      expect(w.take(romeo.jid)).toEqual([]);
      expect(await record(w, juliet.jid)).toMatchObject({ available: false, priority: 0 });
    });
  }

  it('accepts the ends of the range and a signed value', async () => {
    const w = await open();
    const juliet = await w.connect(`${JULIET}/balcony`);
    for (const [text, value] of [
      ['-128', -128],
      ['127', 127],
      ['+7', 7],
    ] as const) {
      await w.send(juliet, `<presence><priority>${text}</priority></presence>`);
      expect(await record(w, juliet.jid)).toMatchObject({ available: true, priority: value });
    }
    // No error: each is only echoed back to the session.
    expect(w.take(juliet.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony [priority:-128]`,
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony [priority:127]`,
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony [priority:+7]`,
    ]);
  });

  it('answers bad-request to a presence type RFC 6121 does not define', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, "<presence type='invisible'/>");
    await w.send(juliet, `<presence type='invisible' to='${ROMEO}'/>`);
    expect(w.take(juliet.jid)).toEqual([
      `presence error - -> ${JULIET}/balcony [error:bad-request]`,
      `presence error ${ROMEO} -> ${JULIET}/balcony [error:bad-request]`,
    ]);
  });
});

describe('subsequent presence (§4.4)', () => {
  it('goes to subscribers and own resources, with no new probes, and updates the stored presence', async () => {
    const w = await open();
    await lovers(w);
    const romeo = await online(w, `${ROMEO}/orchard`);
    const balcony = await online(w, `${JULIET}/balcony`);
    const garden = await online(w, `${JULIET}/garden`);
    w.take(romeo.jid);
    w.take(balcony.jid);
    await w.send(balcony, '<presence><show>xa</show><priority>3</priority></presence>');
    expect(w.take(romeo.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${ROMEO} [show:xa priority:3]`,
    ]);
    expect(w.take(garden.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/garden [show:xa priority:3]`,
    ]);
    expect(w.take(balcony.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony [show:xa priority:3]`,
    ]);
    const stored = await record(w, balcony.jid);
    expect(stored?.priority).toBe(3);
    expect(parseTrusted(stored!.presence!).getChildText('show')).toBe('xa');
  });
});

describe('the sending resource (§4.2.2, §4.4.2)', () => {
  it('gets its own initial and subsequent presence back, but not its unavailable presence', async () => {
    const w = await open();
    const garden = await online(w, `${JULIET}/garden`);
    const balcony = await w.connect(`${JULIET}/balcony`);
    await w.send(balcony, '<presence><status>Wherefore?</status></presence>');
    expect(w.take(balcony.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony [status:Wherefore?]`,
      `presence available ${JULIET}/garden -> ${JULIET}/balcony`,
    ]);
    expect(w.take(garden.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/garden [status:Wherefore?]`,
    ]);

    await w.send(balcony, '<presence><show>away</show></presence>');
    expect(w.take(balcony.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/balcony [show:away]`,
    ]);
    expect(w.take(garden.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${JULIET}/garden [show:away]`,
    ]);

    await w.send(balcony, "<presence type='unavailable'/>");
    expect(w.take(balcony.jid)).toEqual([]);
    expect(w.take(garden.jid)).toEqual([`presence unavailable ${JULIET}/balcony -> ${JULIET}/garden`]);
  });
});

describe('probes from contacts (§4.3.2)', () => {
  async function probe(w: World, from: TestSession): Promise<void> {
    await w.send(from, `<presence to='${JULIET}' type='probe'/>`);
  }

  it('are answered with each available resource for a subscriber, and not at all for others', async () => {
    const w = await open();
    await lovers(w);
    const balcony = await online(w, `${JULIET}/balcony`, '<presence><show>chat</show></presence>');
    const garden = await online(w, `${JULIET}/garden`);
    const romeo = await online(w, `${ROMEO}/orchard`);
    const nurse = await online(w, `${NURSE}/chamber`);
    w.take(balcony.jid);
    w.take(garden.jid);
    await probe(w, romeo);
    expect(sorted(w.take(romeo.jid))).toEqual(
      sorted([
        `presence available ${JULIET}/balcony -> ${ROMEO}/orchard [show:chat]`,
        `presence available ${JULIET}/garden -> ${ROMEO}/orchard`,
      ]),
    );
    await probe(w, nurse);
    expect(w.take(nurse.jid)).toEqual([]);
    expect(w.take(balcony.jid)).toEqual([]);
  });

  it('for an offline user are answered with unavailable and the last logout', async () => {
    const w = await open();
    await lovers(w);
    const romeo = await online(w, `${ROMEO}/orchard`);
    await w.backends.store.lastActivity.set('juliet', { at: Date.UTC(2025, 5, 1, 12, 0, 0), status: '' });
    await w.publish(JULIET, {
      t: 'stanza',
      dir: 'in',
      id: randomUUID(),
      from: `${ROMEO}/orchard`,
      sessionId: '',
      edgeId: '',
      ts: Date.now(),
      xml: `<presence from='${ROMEO}/orchard' to='${JULIET}' type='probe'/>`,
    });
    expect(w.take(romeo.jid)).toEqual([
      `presence unavailable ${JULIET} -> ${ROMEO}/orchard [delay:2025-06-01T12:00:00Z]`,
    ]);
  });
});

describe('directed presence (§4.6)', () => {
  it('reaches a non-contact, which is told when the session ends', async () => {
    const w = await open();
    await lovers(w);
    const romeo = await online(w, `${ROMEO}/orchard`);
    const nurse = await w.connect(`${NURSE}/chamber`);
    const juliet = await online(w, `${JULIET}/balcony`);
    w.take(romeo.jid);
    await w.send(juliet, `<presence to='${NURSE}/chamber'><status>psst</status></presence>`);
    await w.send(juliet, `<presence to='${ROMEO}/orchard'><status>hello</status></presence>`);
    expect(w.take(nurse.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${NURSE}/chamber [status:psst]`,
    ]);
    expect(w.take(romeo.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${ROMEO}/orchard [status:hello]`,
    ]);
    // Romeo is a subscriber and hears of the end anyway; only the nurse is tracked.
    expect((await record(w, juliet.jid))?.directed).toEqual([`${NURSE}/chamber`]);

    await w.end(juliet);
    expect(w.take(nurse.jid)).toEqual([`presence unavailable ${JULIET}/balcony -> ${NURSE}/chamber`]);
    expect(w.take(romeo.jid)).toEqual([`presence unavailable ${JULIET}/balcony -> ${ROMEO}`]);
  });

  it('records the entity before the presence reaches it, so an end right after it still tells it', async () => {
    const registry = new MemorySessionRegistry();
    const local = new LocalDelivery();
    // What the sender's session record held at the moment the nurse got the presence.
    const heldWhenDelivered: (readonly string[] | undefined)[] = [];
    const delivery: Delivery = {
      async deliver(target, payload) {
        if (target.jid === `${NURSE}/chamber` && payload.kind === 'stanza' && payload.xml.includes('psst')) {
          heldWhenDelivered.push((await registry.get(`${JULIET}/balcony`))?.directed);
        }
        return local.deliver(target, payload);
      },
      listen: (edgeId, receiver) => local.listen(edgeId, receiver),
      close: () => local.close(),
    };
    const w = await open([], delivery, registry);
    const nurse = await w.connect(`${NURSE}/chamber`);
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='${NURSE}/chamber'><status>psst</status></presence>`);
    expect(w.take(nurse.jid)).toHaveLength(1);
    expect(heldWhenDelivered).toEqual([[`${NURSE}/chamber`]]);
  });

  it('directed unavailable forgets the entity', async () => {
    const w = await open();
    const nurse = await online(w, `${NURSE}/chamber`);
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='${NURSE}'/>`);
    await w.send(juliet, `<presence to='${NURSE}' type='unavailable'/>`);
    expect(w.take(nurse.jid)).toEqual([
      `presence available ${JULIET}/balcony -> ${NURSE}`,
      `presence unavailable ${JULIET}/balcony -> ${NURSE}`,
    ]);
    expect((await record(w, juliet.jid))?.directed).toEqual([]);
    await w.end(juliet);
    expect(w.take(nurse.jid)).toEqual([]);
  });

  it('is sent to the directed entities when the user goes unavailable, and the list is cleared', async () => {
    const w = await open();
    const nurse = await w.connect(`${NURSE}/chamber`);
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='${NURSE}/chamber'/>`);
    w.take(nurse.jid);
    await w.send(juliet, "<presence type='unavailable'><status>bye</status></presence>");
    expect(w.take(nurse.jid)).toEqual([
      `presence unavailable ${JULIET}/balcony -> ${NURSE}/chamber [status:bye]`,
    ]);
    expect(await record(w, juliet.jid)).toMatchObject({ available: false, directed: [] });
    await w.end(juliet);
    expect(w.take(nurse.jid)).toEqual([]);
  });

  it('refuses to track more than a thousand entities per session', async () => {
    const w = await open();
    const nurse = await online(w, `${NURSE}/chamber`);
    const juliet = await online(w, `${JULIET}/balcony`);
    const many = Array.from({ length: 1000 }, (_, i) => `stranger${i}@example.net`);
    await w.backends.registry.update(juliet.jid, juliet.sessionId, { directed: many });
    await w.send(juliet, `<presence to='${NURSE}/chamber'/>`);
    expect(w.take(juliet.jid)).toEqual([
      `presence error ${NURSE}/chamber -> ${JULIET}/balcony [error:resource-constraint]`,
    ]);
    expect(w.take(nurse.jid)).toEqual([]);
    expect((await record(w, juliet.jid))?.directed).toHaveLength(1000);
  });

  it('a presence error is routed like presence', async () => {
    const w = await open();
    const nurse = await online(w, `${NURSE}/chamber`);
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(
      juliet,
      `<presence to='${NURSE}/chamber' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
    );
    expect(w.take(nurse.jid)).toEqual([`presence error ${JULIET}/balcony -> ${NURSE}/chamber [error:gone]`]);
    expect(w.take(juliet.jid)).toEqual([]);
  });
});

describe('unavailable presence and the end of a session (§4.5)', () => {
  it('tells subscribers and siblings, and records the last logout when no resource is left', async () => {
    const ended: string[] = [];
    const w = await open([
      defineFeature({
        id: 'test-session-ended',
        spec: { title: 'test' },
        roles: ['presence'],
        setup: ({ hooks }) => hooks.on('session-ended', ({ session }) => void ended.push(session.jid)),
      }),
    ]);
    await lovers(w);
    const romeo = await online(w, `${ROMEO}/orchard`);
    const balcony = await online(w, `${JULIET}/balcony`);
    const garden = await online(w, `${JULIET}/garden`);
    w.take(romeo.jid);
    w.take(balcony.jid);

    await w.end(garden);
    expect(w.take(romeo.jid)).toEqual([`presence unavailable ${JULIET}/garden -> ${ROMEO}`]);
    expect(w.take(balcony.jid)).toEqual([`presence unavailable ${JULIET}/garden -> ${JULIET}/balcony`]);
    expect(await w.backends.store.lastActivity.get('juliet')).toBeUndefined();

    const before = Date.now();
    await w.send(
      balcony,
      "<presence type='unavailable'><status>Parting is such sweet sorrow</status></presence>",
    );
    const after = Date.now();
    expect(w.take(romeo.jid)).toEqual([
      `presence unavailable ${JULIET}/balcony -> ${ROMEO} [status:Parting is such sweet sorrow]`,
    ]);
    const afterEnd = await record(w, balcony.jid);
    expect(afterEnd).toMatchObject({ available: false, directed: [] });
    expect(afterEnd?.presence).toBeUndefined();
    const last = await w.backends.store.lastActivity.get('juliet');
    expect(last?.status).toBe('Parting is such sweet sorrow');
    expect(last!.at).toBeGreaterThanOrEqual(before);
    expect(last!.at).toBeLessThanOrEqual(after);

    // Already unavailable: nobody is told again, and the status of the goodbye is kept.
    await w.end(balcony);
    expect(w.take(romeo.jid)).toEqual([]);
    expect((await w.backends.store.lastActivity.get('juliet'))?.status).toBe('Parting is such sweet sorrow');
    expect(ended).toEqual([`${JULIET}/garden`, `${JULIET}/balcony`]);
  });

  it('records the last logout before contacts hear of it, so one that asks at once finds it (XEP-0012)', async () => {
    // Juliet's last activity at the moment romeo got each unavailable presence of her balcony session.
    const heldWhenDelivered: (string | undefined)[] = [];
    const opened: { world?: World } = {};
    const local = new LocalDelivery();
    const delivery: Delivery = {
      async deliver(target, payload) {
        if (
          target.jid === `${ROMEO}/orchard` &&
          payload.kind === 'stanza' &&
          payload.xml.includes('unavailable') &&
          payload.xml.includes(`${JULIET}/balcony`)
        ) {
          heldWhenDelivered.push((await opened.world?.backends.store.lastActivity.get('juliet'))?.status);
        }
        return local.deliver(target, payload);
      },
      listen: (edgeId, receiver) => local.listen(edgeId, receiver),
      close: () => local.close(),
    };
    const w = (opened.world = await open([], delivery));
    await lovers(w);
    await online(w, `${ROMEO}/orchard`);
    const balcony = await online(w, `${JULIET}/balcony`);
    await w.send(balcony, "<presence type='unavailable'><status>Gone to Mantua</status></presence>");
    expect(heldWhenDelivered).toEqual(['Gone to Mantua']);

    await w.send(balcony, '<presence/>');
    await w.end(balcony);
    expect(heldWhenDelivered).toEqual(['Gone to Mantua', '']);
  });

  it('a session that ends while available leaves a last logout with no status', async () => {
    const w = await open();
    await w.backends.store.lastActivity.set('juliet', { at: 1, status: 'an old goodbye' });
    const juliet = await online(w, `${JULIET}/balcony`);
    const before = Date.now();
    await w.end(juliet);
    const last = await w.backends.store.lastActivity.get('juliet');
    expect(last?.status).toBe('');
    expect(last!.at).toBeGreaterThanOrEqual(before);
  });

  it('a stale session end (the session was replaced) leaves the new session alone', async () => {
    const w = await open();
    await lovers(w);
    const romeo = await online(w, `${ROMEO}/orchard`);
    const first = await online(w, `${JULIET}/balcony`);
    w.take(romeo.jid);
    const old = await record(w, first.jid);
    const second = await w.connect(`${JULIET}/balcony`);
    await w.send(second, '<presence/>');
    w.take(romeo.jid);
    await w.publish(JULIET, { t: 'session-end', id: randomUUID(), ts: Date.now(), record: old! });
    expect(w.take(romeo.jid)).toEqual([]);
    expect(await record(w, second.jid)).toMatchObject({ sessionId: second.sessionId, available: true });
    expect(await w.backends.store.lastActivity.get('juliet')).toBeUndefined();
  });
});
