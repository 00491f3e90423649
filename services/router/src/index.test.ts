// The router host end to end over the in-process bus: IQ targets, message routing, replays, failures.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import {
  defineFeature,
  encodeEnvelope,
  parseConfig,
  silentLogger,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
  type RoleHandle,
  type StanzaEnvelope,
} from '@starling/core';
import { enabledFeatures } from '@starling/features';
import type { BusRecord, SessionRecord, Store } from '@starling/ports';
import { openSqliteStore } from '@starling/store';
import { deriveScramKeys, parseTrusted } from '@starling/xmpp';
import { startRouter } from './index.ts';

const EDGE = 'edge-test';
const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ROMEO = 'romeo@example.com';
const ORCHARD = `${ROMEO}/orchard`;
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

/** Fails every message whose body says so, to exercise the host's own error path. */
const faulty = defineFeature({
  id: 'faulty',
  spec: { title: 'Fails on request' },
  roles: ['router'],
  setup(ctx) {
    ctx.hooks.on('stanza-outbound', ({ stanza }) => {
      if (stanza.getChildText('body') === 'fail') throw new Error('provoked');
    });
  },
});

let bus: MemoryStanzaBus;
let registry: MemorySessionRegistry;
let delivery: LocalDelivery;
let store: Store;
let router: RoleHandle;
const inboxes = new Map<string, string[]>();
const waiters = new Map<string, (xml: string) => void>();

/** The next stanza delivered to `jid` (already queued ones first). */
function next(jid: string): Promise<string> {
  const queued = inboxes.get(jid)?.shift();
  if (queued !== undefined) return Promise.resolve(queued);
  return new Promise((resolve) => waiters.set(jid, resolve));
}

async function bind(jid: string): Promise<SessionRecord> {
  const record: SessionRecord = {
    jid,
    sessionId: randomUUID(),
    edgeId: EDGE,
    boundAt: Date.now(),
    priority: 0,
    available: true,
    interested: false,
  };
  await registry.bind(record);
  inboxes.set(jid, []);
  return record;
}

function envelope(session: SessionRecord, xml: string, id: string = randomUUID()): StanzaEnvelope {
  const stanza = parseTrusted(xml);
  stanza.attrs.from = session.jid;
  return {
    t: 'stanza',
    id,
    from: session.jid,
    sessionId: session.sessionId,
    edgeId: session.edgeId,
    ts: Date.now(),
    xml: stanza.toString(),
  };
}

async function send(session: SessionRecord, xml: string, id?: string): Promise<void> {
  const key = session.jid.slice(0, session.jid.indexOf('/'));
  await bus.publish(TOPIC_STANZAS, key, encodeEnvelope(envelope(session, xml, id)));
}

/** Sends a ping on the stream and waits for its answer: by then all that was sent before was handled. */
async function settle(session: SessionRecord): Promise<void> {
  const marker = randomUUID();
  await send(session, `<iq type="get" id="${marker}" to="example.com"><ping xmlns="urn:xmpp:ping"/></iq>`);
  const got = await next(session.jid);
  if (!got.includes(marker)) throw new Error(`unexpected delivery before the marker: ${got}`);
}

async function sendAndSettle(session: SessionRecord, xml: string): Promise<void> {
  await send(session, xml);
  await settle(session);
}

function condition(xml: string): string {
  const error = parseTrusted(xml).getChild('error');
  return error?.getChildElements().find((el) => el.getNS() === NS_STANZAS)?.name ?? 'none';
}

beforeEach(async () => {
  bus = new MemoryStanzaBus();
  registry = new MemorySessionRegistry();
  delivery = new LocalDelivery();
  store = await openSqliteStore(':memory:');
  const keys = await deriveScramKeys('SHA-256', 'secret', 4096);
  for (const username of ['juliet', 'romeo']) {
    await store.accounts.create({
      username,
      scram: { 'SHA-1': keys, 'SHA-256': keys },
      createdAt: Date.now(),
    });
  }
  inboxes.clear();
  waiters.clear();
  await delivery.listen(EDGE, (target, payload) => {
    const inbox = inboxes.get(target.jid);
    if (inbox === undefined || payload.kind !== 'stanza') return Promise.resolve(false);
    const waiter = waiters.get(target.jid);
    if (waiter) {
      waiters.delete(target.jid);
      waiter(payload.xml);
    } else {
      inbox.push(payload.xml);
    }
    return Promise.resolve(true);
  });
  const config = parseConfig({ domain: 'example.com' });
  router = await startRouter({
    config,
    bus,
    registry,
    store,
    delivery,
    log: silentLogger(),
    features: [...enabledFeatures(config), faulty],
  });
});

afterEach(async () => {
  await router.close();
  await bus.close();
  await delivery.close();
  await registry.close();
  await store.close();
});

describe('IQs', () => {
  it('answers IQs to the server on the sending session', async () => {
    const juliet = await bind(BALCONY);
    await send(juliet, '<iq type="get" id="p1" to="example.com"><ping xmlns="urn:xmpp:ping"/></iq>');
    expect(await next(BALCONY)).toBe(`<iq type="result" id="p1" to="${BALCONY}" from="example.com"/>`);
  });

  it('answers IQs without a "to" for the own account', async () => {
    const juliet = await bind(BALCONY);
    await send(juliet, '<iq type="get" id="r1"><query xmlns="jabber:iq:roster"/></iq>');
    expect(await next(BALCONY)).toBe(
      `<iq type="result" id="r1" to="${BALCONY}"><query xmlns="jabber:iq:roster"/></iq>`,
    );
  });

  it("answers IQs to another account's bare JID on its behalf, or service-unavailable", async () => {
    const juliet = await bind(BALCONY);
    await send(juliet, `<iq type="get" id="a" to="${ROMEO}"><ping xmlns="urn:xmpp:ping"/></iq>`);
    expect(await next(BALCONY)).toBe(`<iq type="result" id="a" to="${BALCONY}" from="${ROMEO}"/>`);
    await send(juliet, `<iq type="get" id="b" to="${ROMEO}"><query xmlns="urn:unknown"/></iq>`);
    expect(condition(await next(BALCONY))).toBe('service-unavailable');
    await send(juliet, '<iq type="get" id="c" to="nobody@example.com"><ping xmlns="urn:xmpp:ping"/></iq>');
    expect(condition(await next(BALCONY))).toBe('service-unavailable');
  });

  it('passes IQs to a bound full JID and answers service-unavailable for an unbound one', async () => {
    const juliet = await bind(BALCONY);
    await bind(ORCHARD);
    await send(juliet, `<iq type="get" id="v" to="${ORCHARD}"><query xmlns="jabber:iq:version"/></iq>`);
    expect(await next(ORCHARD)).toBe(
      `<iq type="get" id="v" to="${ORCHARD}" from="${BALCONY}"><query xmlns="jabber:iq:version"/></iq>`,
    );
    await send(juliet, `<iq type="get" id="w" to="${ROMEO}/gone"><query xmlns="jabber:iq:version"/></iq>`);
    expect(condition(await next(BALCONY))).toBe('service-unavailable');
  });

  it('drops results and errors addressed to the server', async () => {
    const juliet = await bind(BALCONY);
    await sendAndSettle(juliet, '<iq type="result" id="x" to="example.com"/>');
    await sendAndSettle(juliet, '<iq type="result" id="y"/>');
    expect(inboxes.get(BALCONY)).toEqual([]);
  });
});

describe('messages', () => {
  it('routes messages to the recipient', async () => {
    const juliet = await bind(BALCONY);
    await bind(ORCHARD);
    await send(juliet, `<message type="chat" to="${ROMEO}"><body>hi</body></message>`);
    // XEP-0313: archived on the way, so the copy carries the recipient archive's stanza-id.
    expect(await next(ORCHARD)).toMatch(
      new RegExp(
        `^<message type="chat" to="${ROMEO}" from="${BALCONY}"><body>hi</body>` +
          `<stanza-id xmlns="urn:xmpp:sid:0" by="${ROMEO}" id="[0-9A-Z]{26}"/></message>$`,
      ),
    );
  });

  it('answers remote domains with remote-server-not-found, but never an error', async () => {
    const juliet = await bind(BALCONY);
    await send(juliet, '<message type="chat" id="m" to="juliet@elsewhere.net"><body>x</body></message>');
    expect(condition(await next(BALCONY))).toBe('remote-server-not-found');
    await sendAndSettle(juliet, '<message type="error" to="juliet@elsewhere.net"/>');
    expect(inboxes.get(BALCONY)).toEqual([]);
  });

  it('answers an invalid address with jid-malformed', async () => {
    const juliet = await bind(BALCONY);
    await send(juliet, '<message type="chat" id="m" to="a@b@c"><body>x</body></message>');
    expect(condition(await next(BALCONY))).toBe('jid-malformed');
  });

  it('runs the stanza-outbound hook first (blocking)', async () => {
    const juliet = await bind(BALCONY);
    await bind(ORCHARD);
    await send(
      juliet,
      `<iq type="set" id="b"><block xmlns="urn:xmpp:blocking"><item jid="${ROMEO}"/></block></iq>`,
    );
    expect(await next(BALCONY)).toBe(`<iq type="result" id="b" to="${BALCONY}"/>`);
    await send(juliet, `<message type="chat" id="m" to="${ROMEO}"><body>hi</body></message>`);
    expect(condition(await next(BALCONY))).toBe('not-acceptable');
    expect(inboxes.get(ORCHARD)).toEqual([]);
  });
});

describe('the consumer', () => {
  it('drops a replayed envelope', async () => {
    const juliet = await bind(BALCONY);
    const id = randomUUID();
    const ping = '<iq type="get" id="once" to="example.com"><ping xmlns="urn:xmpp:ping"/></iq>';
    await send(juliet, ping, id);
    expect(await next(BALCONY)).toContain('id="once"');
    // Same envelope id, so the router must not answer it (an answer would arrive before settle's own).
    await send(juliet, ping.replace('"once"', '"replayed"'), id);
    await settle(juliet);
  });

  it('answers a stanza whose handling failed with internal-server-error and goes on', async () => {
    const juliet = await bind(BALCONY);
    await bind(ORCHARD);
    await send(juliet, `<message type="chat" id="f" to="${ROMEO}"><body>fail</body></message>`);
    const reply = await next(BALCONY);
    expect(condition(reply)).toBe('internal-server-error');
    expect(parseTrusted(reply).attrs.id).toBe('f');
    await send(juliet, `<message type="chat" to="${ROMEO}"><body>ok</body></message>`);
    expect(await next(ORCHARD)).toContain('<body>ok</body>');
  });

  it('republishes presence to the presence topic unchanged', async () => {
    const juliet = await bind(BALCONY);
    const records: BusRecord[] = [];
    const got = new Promise<void>((resolve) => {
      void bus.subscribe(TOPIC_PRESENCE, 'test', (record) => {
        records.push(record);
        resolve();
        return Promise.resolve();
      });
    });
    const value = encodeEnvelope(envelope(juliet, '<presence><show>away</show></presence>'));
    await bus.publish(TOPIC_STANZAS, JULIET, value, { trace: 't1' });
    await got;
    expect(records).toEqual([{ topic: TOPIC_PRESENCE, key: JULIET, value, headers: { trace: 't1' } }]);
  });
});
