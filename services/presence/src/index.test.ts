// The presence role host: consumes the presence topic, drops replays, and survives bad or failing records.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import {
  defineFeature,
  encodeEnvelope,
  parseConfig,
  TOPIC_PRESENCE,
  type Envelope,
  type Feature,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { allFeatures } from '@starling/features';
import type { SessionRecord, Store } from '@starling/ports';
import { attr, parseTrusted } from '@starling/xmpp';
import { startPresence } from './index.ts';

const JULIET = 'juliet@example.com';
const ROMEO = 'romeo@example.com';
const EDGE = 'edge-1';

const presenceFeature = allFeatures.find((feature) => feature.id === 'rfc6121-presence');
const offlineFeature = allFeatures.find((feature) => feature.id === 'xep-0160-offline');

/** Stanzas delivered per full JID, with a way to wait for the n-th one. */
class Inboxes {
  readonly #stanzas = new Map<string, string[]>();
  readonly #waiters: { jid: string; count: number; wake: () => void }[] = [];

  push(jid: string, line: string): void {
    const list = this.#stanzas.get(jid) ?? [];
    list.push(line);
    this.#stanzas.set(jid, list);
    for (const waiter of [...this.#waiters]) {
      if (waiter.jid === jid && list.length >= waiter.count) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.wake();
      }
    }
  }

  of(jid: string): string[] {
    return this.#stanzas.get(jid) ?? [];
  }

  until(jid: string, count: number): Promise<string[]> {
    if (this.of(jid).length >= count) return Promise.resolve(this.of(jid));
    return new Promise((resolve) => this.#waiters.push({ jid, count, wake: () => resolve(this.of(jid)) }));
  }
}

interface Host {
  readonly bus: MemoryStanzaBus;
  readonly store: Store;
  readonly registry: MemorySessionRegistry;
  readonly inboxes: Inboxes;
  readonly logged: string[];
  readonly role: RoleHandle;
}

let open: { host: Host; delivery: LocalDelivery } | undefined;

afterEach(async () => {
  if (open === undefined) return;
  const { host, delivery } = open;
  open = undefined;
  await host.bus.close();
  await host.role.close();
  await delivery.close();
  await host.registry.close();
  await host.store.close();
});

async function start(extra: readonly Feature[] = []): Promise<Host> {
  const bus = new MemoryStanzaBus();
  const registry = new MemorySessionRegistry();
  const delivery = new LocalDelivery();
  const store = await openSqliteStore(':memory:');
  const logged: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged.push((JSON.parse(chunk.toString()) as { msg: string }).msg);
      done();
    },
  });
  const inboxes = new Inboxes();
  await delivery.listen(EDGE, (target, payload) => {
    if (payload.kind === 'stanza') {
      const stanza = parseTrusted(payload.xml);
      const type = attr(stanza, 'type') ?? 'available';
      inboxes.push(target.jid, `${stanza.name} ${type} ${attr(stanza, 'from') ?? '-'}`);
    }
    return Promise.resolve(true);
  });
  const keys = { salt: 'c2FsdA==', iterations: 4096, storedKey: 'a2V5', serverKey: 'a2V5' };
  for (const username of ['juliet', 'romeo']) {
    await store.accounts.create({ username, scram: { 'SHA-1': keys, 'SHA-256': keys }, createdAt: 0 });
  }
  await store.rosters.setItem('juliet', {
    jid: ROMEO,
    subscription: 'both',
    askOut: false,
    approved: false,
    groups: [],
  });
  await store.rosters.setItem('romeo', {
    jid: JULIET,
    subscription: 'both',
    askOut: false,
    approved: false,
    groups: [],
  });
  const deps: RoleDeps = {
    config: parseConfig({ domain: 'example.com' }),
    bus,
    registry,
    delivery,
    store,
    log: pino({ level: 'warn' }, sink),
    features: [presenceFeature!, ...extra],
  };
  const role = await startPresence(deps);
  const host = { bus, store, registry, inboxes, logged, role };
  open = { host, delivery };
  return host;
}

async function bind(host: Host, jid: string, available: boolean): Promise<SessionRecord> {
  const record: SessionRecord = {
    jid,
    sessionId: randomUUID(),
    edgeId: EDGE,
    boundAt: Date.now(),
    priority: 0,
    available,
    interested: false,
    ...(available ? { presence: `<presence from='${jid}'/>` } : {}),
  };
  await host.registry.bind(record);
  return record;
}

function fromSession(session: SessionRecord, xml: string, id: string = randomUUID()): Envelope {
  return {
    t: 'stanza',
    id,
    from: session.jid,
    sessionId: session.sessionId,
    edgeId: EDGE,
    ts: Date.now(),
    xml,
  };
}

async function publish(host: Host, key: string, envelope: Envelope | string): Promise<void> {
  await host.bus.publish(
    TOPIC_PRESENCE,
    key,
    typeof envelope === 'string' ? envelope : encodeEnvelope(envelope),
  );
}

describe('presence role host', () => {
  it('hands session stanzas, recipient-side stanzas and session ends to the feature', async () => {
    const host = await start();
    const romeo = await bind(host, `${ROMEO}/orchard`, true);
    const juliet = await bind(host, `${JULIET}/balcony`, false);

    await publish(host, JULIET, fromSession(juliet, '<presence/>'));
    expect(await host.inboxes.until(romeo.jid, 1)).toEqual([`presence available ${JULIET}/balcony`]);
    // Juliet's own presence comes back to her (RFC 6121 §4.2.2), then Romeo's, which answers her probe.
    expect(await host.inboxes.until(juliet.jid, 2)).toEqual([
      `presence available ${JULIET}/balcony`,
      `presence available ${ROMEO}/orchard`,
    ]);

    await publish(host, JULIET, {
      t: 'stanza',
      dir: 'in',
      id: randomUUID(),
      from: romeo.jid,
      sessionId: '',
      edgeId: '',
      ts: Date.now(),
      xml: `<presence from='${romeo.jid}' to='${JULIET}' type='probe'/>`,
    });
    expect(await host.inboxes.until(romeo.jid, 2)).toEqual([
      `presence available ${JULIET}/balcony`,
      `presence available ${JULIET}/balcony`,
    ]);

    const last = await host.registry.unbind(juliet.jid, juliet.sessionId);
    await publish(host, JULIET, { t: 'session-end', id: randomUUID(), ts: Date.now(), record: last! });
    expect((await host.inboxes.until(romeo.jid, 3))[2]).toBe(`presence unavailable ${JULIET}/balcony`);
  });

  it('drops a replayed record', async () => {
    const host = await start();
    const romeo = await bind(host, `${ROMEO}/orchard`, true);
    const juliet = await bind(host, `${JULIET}/balcony`, true);
    const replayed = fromSession(juliet, '<presence><show>away</show></presence>');
    await publish(host, JULIET, replayed);
    await publish(host, JULIET, replayed);
    await publish(host, JULIET, fromSession(juliet, "<presence type='unavailable'/>"));
    expect(await host.inboxes.until(romeo.jid, 2)).toEqual([
      `presence available ${JULIET}/balcony`,
      `presence unavailable ${JULIET}/balcony`,
    ]);
  });

  it('keeps consuming after an undecodable record, a malformed stanza and a failing handler', async () => {
    const broken = defineFeature({
      id: 'test-broken-hook',
      spec: { title: 'test' },
      roles: ['presence'],
      setup: ({ hooks }) =>
        hooks.on('session-ended', () => {
          throw new Error('hook failed');
        }),
    });
    const host = await start([broken]);
    const romeo = await bind(host, `${ROMEO}/orchard`, true);
    const juliet = await bind(host, `${JULIET}/balcony`, true);
    await publish(host, JULIET, 'not json');
    await publish(host, JULIET, fromSession(juliet, '<presence'));
    const garden = await bind(host, `${JULIET}/garden`, true);
    await publish(host, JULIET, { t: 'session-end', id: randomUUID(), ts: Date.now(), record: garden });
    await publish(host, JULIET, fromSession(juliet, '<presence><show>dnd</show></presence>'));
    expect(await host.inboxes.until(romeo.jid, 2)).toEqual([
      `presence unavailable ${JULIET}/garden`,
      `presence available ${JULIET}/balcony`,
    ]);
    expect(host.logged).toEqual(['undecodable record dropped', 'record failed', 'record failed']);
  });

  it('hands stored messages over when the router says it stored one for an available resource', async () => {
    const host = await start([offlineFeature!]);
    const juliet = await bind(host, `${JULIET}/balcony`, true);
    await host.store.offline.push('juliet', `<message from='${ROMEO}/orchard' to='${JULIET}'/>`, 0, 10);
    await publish(host, JULIET, { t: 'offline-stored', id: randomUUID(), ts: Date.now(), owner: JULIET });
    expect(await host.inboxes.until(juliet.jid, 1)).toEqual([`message available ${ROMEO}/orchard`]);
    await expect.poll(() => host.store.offline.list('juliet')).toEqual([]);
    // Word about no account is dropped, and the next record is handled.
    await publish(host, 'example.com', {
      t: 'offline-stored',
      id: randomUUID(),
      ts: Date.now(),
      owner: 'example.com',
    });
    await publish(host, JULIET, fromSession(juliet, '<presence><show>dnd</show></presence>'));
    expect((await host.inboxes.until(juliet.jid, 2))[1]).toBe(`presence available ${JULIET}/balcony`);
    expect(host.logged).toEqual(['offline-stored record for no account dropped']);
  });
});
