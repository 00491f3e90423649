// The archive role behind the router over the in-process bus: a user's requests see their own writes.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import {
  encodeEnvelope,
  parseConfig,
  silentLogger,
  TOPIC_ARCHIVE,
  TOPIC_STANZAS,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { enabledFeatures } from '@starling/features';
import type { SessionRecord, Store } from '@starling/ports';
import { startRouter } from '@starling/router';
import { openSqliteStore } from '@starling/store';
import { deriveScramKeys, parseTrusted, type Element } from '@starling/xmpp';
import { startArchive } from './index.ts';

const EDGE = 'edge-test';
const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ROMEO = 'romeo@example.com';
const ORCHARD = `${ROMEO}/orchard`;

let bus: MemoryStanzaBus;
let registry: MemorySessionRegistry;
let delivery: LocalDelivery;
let store: Store;
let deps: RoleDeps;
let roles: RoleHandle[];
const inboxes = new Map<string, Element[]>();
const waiters = new Map<string, { match: (el: Element) => boolean; resolve: (el: Element) => void }>();

/** The first stanza delivered to `jid` that matches, waiting for it if none has yet. */
function next(jid: string, match: (el: Element) => boolean = () => true): Promise<Element> {
  const inbox = inboxes.get(jid) ?? [];
  const index = inbox.findIndex(match);
  const found = inbox[index];
  if (found) {
    inbox.splice(index, 1);
    return Promise.resolve(found);
  }
  return new Promise((resolve) => waiters.set(jid, { match, resolve }));
}

/** The result messages of a query, up to and including its IQ answer. */
async function answer(jid: string, id: string): Promise<{ bodies: string[]; ids: string[]; iq: Element }> {
  const bodies: string[] = [];
  const ids: string[] = [];
  for (;;) {
    const el = await next(
      jid,
      (s) => s.name === 'iq' || s.getChild('result', 'urn:xmpp:mam:2') !== undefined,
    );
    if (el.name === 'iq') {
      expect(el.attrs.id).toBe(id);
      return { bodies, ids, iq: el };
    }
    const result = el.getChild('result');
    ids.push(String(result?.attrs.id));
    bodies.push(result?.getChild('forwarded')?.getChild('message')?.getChildText('body') ?? '?');
  }
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

async function send(session: SessionRecord, xml: string): Promise<void> {
  const stanza = parseTrusted(xml);
  stanza.attrs.from = session.jid;
  const key = session.jid.slice(0, session.jid.indexOf('/'));
  await bus.publish(
    TOPIC_STANZAS,
    key,
    encodeEnvelope({
      t: 'stanza',
      id: randomUUID(),
      from: session.jid,
      sessionId: session.sessionId,
      edgeId: session.edgeId,
      ts: Date.now(),
      xml: stanza.toString(),
    }),
  );
}

const query = (id: string) => `<iq type="set" id="${id}"><query xmlns="urn:xmpp:mam:2"/></iq>`;

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
    const el = parseTrusted(payload.xml);
    const waiter = waiters.get(target.jid);
    if (waiter?.match(el) === true) {
      waiters.delete(target.jid);
      waiter.resolve(el);
    } else {
      inbox.push(el);
    }
    return Promise.resolve(true);
  });
  const config = parseConfig({ domain: 'example.com' });
  deps = { config, bus, registry, store, delivery, log: silentLogger(), features: enabledFeatures(config) };
  roles = [await startArchive(deps), await startRouter(deps)];
});

afterEach(async () => {
  await bus.close();
  for (const role of roles) await role.close();
  await delivery.close();
  await registry.close();
  await store.close();
});

describe('the archive role', () => {
  it('answers a query sent right behind a message with that message (the sender reads its writes)', async () => {
    const romeo = await bind(ORCHARD);
    await bind(BALCONY);
    // No waiting in between: the query travels the archive topic behind the write, on Romeo's key.
    await send(romeo, `<message type="chat" to="${JULIET}"><body>But soft</body></message>`);
    await send(romeo, query('q1'));
    const { bodies, iq } = await answer(ORCHARD, 'q1');
    expect(bodies).toEqual(['But soft']);
    expect(iq.getChild('fin', 'urn:xmpp:mam:2')?.attrs.complete).toBe('true');
  });

  it('lets the recipient find a message in the archive as soon as it arrived, under its stanza-id', async () => {
    const romeo = await bind(ORCHARD);
    const juliet = await bind(BALCONY);
    await send(romeo, `<message type="chat" to="${JULIET}"><body>What light</body></message>`);
    const delivered = await next(BALCONY, (el) => el.name === 'message');
    const stanzaId = String(delivered.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id);
    await send(juliet, query('q2'));
    expect(await answer(BALCONY, 'q2')).toMatchObject({ bodies: ['What light'], ids: [stanzaId] });
  });

  it('keeps one entry for a write that comes twice, and answers a query that comes twice once', async () => {
    const juliet = await bind(BALCONY);
    const write = encodeEnvelope({
      t: 'archive-write',
      id: `${JULIET}/sid-1`,
      owner: JULIET,
      stanzaId: 'sid-1',
      with: ROMEO,
      direction: 'in',
      ts: Date.now(),
      xml: `<message type="chat" from="${ORCHARD}" to="${JULIET}"><body>Twice</body></message>`,
    });
    await bus.publish(TOPIC_ARCHIVE, JULIET, write);
    await bus.publish(TOPIC_ARCHIVE, JULIET, write);
    const asked = encodeEnvelope({
      t: 'mam-query',
      id: randomUUID(),
      owner: JULIET,
      from: BALCONY,
      sessionId: juliet.sessionId,
      edgeId: EDGE,
      ts: Date.now(),
      xml: query('once'),
    });
    await bus.publish(TOPIC_ARCHIVE, JULIET, asked);
    await bus.publish(TOPIC_ARCHIVE, JULIET, asked);
    await send(juliet, query('after'));
    expect(await answer(BALCONY, 'once')).toMatchObject({ bodies: ['Twice'], ids: ['sid-1'] });
    // The next answer is the later query's: the replayed one was dropped.
    expect(await answer(BALCONY, 'after')).toMatchObject({ bodies: ['Twice'] });
  });

  it('drops undecodable records and goes on with the next', async () => {
    const juliet = await bind(BALCONY);
    await bus.publish(TOPIC_ARCHIVE, JULIET, '{"t":"stanza"}');
    await bus.publish(TOPIC_ARCHIVE, JULIET, 'not json');
    await send(juliet, query('q3'));
    expect(await answer(BALCONY, 'q3')).toMatchObject({ bodies: [] });
  });
});
