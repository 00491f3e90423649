// Test harness for RFC 6121 presence: local accounts, sessions with inboxes, and the presence topic consumed in process.
import { randomUUID } from 'node:crypto';
import {
  decodeEnvelope,
  encodeEnvelope,
  Hooks,
  parseConfig,
  setupFeatures,
  silentLogger,
  TOPIC_PRESENCE,
  type Envelope,
  type Feature,
  type FeatureContext,
  type RoleDeps,
} from '@starling/core';
import type {
  BusHandler,
  BusSubscription,
  Delivery,
  RosterItem,
  SessionRecord,
  SessionRegistry,
  StanzaBus,
  Store,
  Subscription,
} from '@starling/ports';
import { attr, type Element, Jid, NS_ROSTER, parseTrusted } from '@starling/xmpp';
import { createRouting } from '../rfc6121-routing/index.ts';
import presenceFeature, { presenceHandlerFor, type PresenceHandler } from './index.ts';

/** The adapters a world runs on; tests pass the real in-process ones. */
export interface Backends {
  readonly bus: StanzaBus;
  readonly registry: SessionRegistry;
  readonly delivery: Delivery;
  readonly store: Store;
}

export interface WorldOptions {
  /** Extra features set up beside presence (to add hooks). */
  readonly features?: readonly Feature[];
  /**
   * Which keys of the presence topic the world processes; the others are only recorded in `published`,
   * so a test sees what one side sends without the other side reacting.
   */
  readonly handles?: (key: string) => boolean;
}

const DOMAIN = 'example.com';
const EDGE = 'edge-1';

// Counts presence records in flight, so a test can wait until everything they caused has happened.
class CountingBus implements StanzaBus {
  readonly #inner: StanzaBus;
  #inFlight = 0;
  #waiters: (() => void)[] = [];

  constructor(inner: StanzaBus) {
    this.#inner = inner;
  }

  async publish(topic: string, key: string, value: string, headers?: Readonly<Record<string, string>>) {
    if (topic === TOPIC_PRESENCE) this.#inFlight++;
    await this.#inner.publish(topic, key, value, headers);
  }

  subscribe(topic: string, group: string, handler: BusHandler): Promise<BusSubscription> {
    return this.#inner.subscribe(topic, group, async (record) => {
      try {
        await handler(record);
      } finally {
        if (record.topic === TOPIC_PRESENCE && --this.#inFlight === 0) {
          const waiters = this.#waiters;
          this.#waiters = [];
          for (const wake of waiters) wake();
        }
      }
    });
  }

  settled(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** One XMPP session of a test user, bound in the registry on the test edge. */
export interface TestSession {
  readonly jid: string;
  readonly sessionId: string;
}

export class World {
  readonly backends: Backends;
  readonly ctx: FeatureContext;
  readonly handler: PresenceHandler;
  /** Presence-topic envelopes the world did not process (see WorldOptions.handles). */
  readonly published: { key: string; envelope: Envelope }[] = [];
  /** Errors a failing envelope raised; tests expect none unless they provoke one. */
  readonly failures: unknown[] = [];
  readonly #bus: CountingBus;
  readonly #inboxes = new Map<string, Element[]>();
  readonly #live = new Set<string>();
  readonly #closers: (() => Promise<void>)[] = [];

  private constructor(backends: Backends, bus: CountingBus, ctx: FeatureContext, handler: PresenceHandler) {
    this.backends = backends;
    this.#bus = bus;
    this.ctx = ctx;
    this.handler = handler;
  }

  static async open(backends: Backends, options: WorldOptions = {}): Promise<World> {
    const bus = new CountingBus(backends.bus);
    const config = parseConfig({ domain: DOMAIN });
    const log = silentLogger();
    const hooks = new Hooks();
    const routing = createRouting({ ...backends, bus, config, hooks, log });
    const deps: RoleDeps = {
      ...backends,
      bus,
      config,
      log,
      features: [presenceFeature, ...(options.features ?? [])],
    };
    const host = await setupFeatures('presence', deps, routing, hooks);
    const handler = presenceHandlerFor(host.context);
    if (handler === undefined) throw new Error('presence feature not set up');
    const world = new World(backends, bus, host.context, handler);
    const handles = options.handles ?? (() => true);
    const subscription = await bus.subscribe(TOPIC_PRESENCE, 'presence', async (record) => {
      const envelope = decodeEnvelope(record.value);
      if (!handles(record.key)) {
        world.published.push({ key: record.key, envelope });
        return;
      }
      try {
        if (envelope.t === 'offline-stored') {
          await host.hooks.run('offline-stored', { owner: Jid.parse(envelope.owner) });
        } else if (envelope.t === 'session-end') await handler.sessionEnded(envelope);
        else if (envelope.dir === 'in') await handler.inbound(envelope);
        else await handler.outbound(envelope);
      } catch (err) {
        world.failures.push(err);
      }
    });
    const receiver = await backends.delivery.listen(EDGE, (target, payload) => {
      if (!world.#live.has(target.sessionId)) return Promise.resolve(false);
      if (payload.kind === 'stanza') world.inbox(target.jid).push(parseTrusted(payload.xml));
      return Promise.resolve(true);
    });
    world.#closers.push(
      () => subscription.close(),
      () => receiver.close(),
    );
    return world;
  }

  async account(username: string): Promise<void> {
    const keys = { salt: 'c2FsdA==', iterations: 4096, storedKey: 'a2V5', serverKey: 'a2V5' };
    await this.backends.store.accounts.create({
      username,
      scram: { 'SHA-1': keys, 'SHA-256': keys },
      createdAt: Date.now(),
    });
  }

  /** Binds a session; `available` makes it an available resource without sending initial presence. */
  async connect(jid: string, state: { available?: boolean; presence?: string } = {}): Promise<TestSession> {
    const record: SessionRecord = {
      jid,
      sessionId: randomUUID(),
      edgeId: EDGE,
      boundAt: Date.now(),
      priority: 0,
      available: state.available ?? false,
      interested: true,
      ...(state.presence === undefined ? {} : { presence: state.presence }),
    };
    await this.backends.registry.bind(record);
    this.#live.add(record.sessionId);
    this.#inboxes.set(jid, []);
    return { jid, sessionId: record.sessionId };
  }

  /** What the edge would publish for a presence stanza the session sent; resolves once all it caused is done. */
  async send(session: TestSession, xml: string): Promise<void> {
    const bare = session.jid.slice(0, session.jid.indexOf('/'));
    await this.#bus.publish(
      TOPIC_PRESENCE,
      bare,
      encodeEnvelope({
        t: 'stanza',
        id: randomUUID(),
        from: session.jid,
        sessionId: session.sessionId,
        edgeId: EDGE,
        ts: Date.now(),
        xml,
      }),
    );
    await this.settled();
  }

  /** Publishes an envelope as routing or an edge would, and waits for its effects. */
  async publish(key: string, envelope: Envelope): Promise<void> {
    await this.#bus.publish(TOPIC_PRESENCE, key, encodeEnvelope(envelope));
    await this.settled();
  }

  /** The stream closes: the edge unbinds the session and publishes its last record. */
  async end(session: TestSession): Promise<void> {
    const record = await this.backends.registry.unbind(session.jid, session.sessionId);
    if (record === undefined) throw new Error(`${session.jid} was not bound`);
    this.#live.delete(session.sessionId);
    await this.publish(session.jid.slice(0, session.jid.indexOf('/')), {
      t: 'session-end',
      id: randomUUID(),
      ts: Date.now(),
      record,
    });
  }

  settled(): Promise<void> {
    return this.#bus.settled();
  }

  inbox(jid: string): Element[] {
    let inbox = this.#inboxes.get(jid);
    if (inbox === undefined) {
      inbox = [];
      this.#inboxes.set(jid, inbox);
    }
    return inbox;
  }

  /** Summaries of what `jid` received since the last call, in arrival order. */
  take(jid: string): string[] {
    const inbox = this.inbox(jid);
    const taken = inbox.splice(0, inbox.length);
    return taken.map(summary);
  }

  async setItem(
    username: string,
    contact: string,
    subscription: Subscription,
    flags: { askOut?: boolean; approved?: boolean } = {},
  ): Promise<void> {
    const item: RosterItem = {
      jid: contact,
      subscription,
      askOut: flags.askOut ?? false,
      approved: flags.approved ?? false,
      groups: [],
    };
    await this.backends.store.rosters.setItem(username, item);
  }

  async close(): Promise<void> {
    for (const close of this.#closers) await close();
    await this.backends.bus.close();
    await this.backends.delivery.close();
    await this.backends.registry.close();
    await this.backends.store.close();
  }
}

/**
 * A stanza as one line: roster pushes as `push <jid> <subscription>[ ask][ approved]`, presence as
 * `presence <type> <from> -> <to>` plus its payload, errors with their condition.
 */
export function summary(stanza: Element): string {
  const query = stanza.getChild('query', NS_ROSTER);
  const item = query?.getChild('item');
  if (stanza.name === 'iq' && item !== undefined) {
    const ask = attr(item, 'ask') === 'subscribe' ? ' ask' : '';
    const approved = attr(item, 'approved') === 'true' ? ' approved' : '';
    return `push ${attr(item, 'jid') ?? '?'} ${attr(item, 'subscription') ?? '?'}${ask}${approved}`;
  }
  const head = `${stanza.name} ${attr(stanza, 'type') ?? 'available'} ${attr(stanza, 'from') ?? '-'} -> ${attr(stanza, 'to') ?? '-'}`;
  const payload = stanza
    .getChildElements()
    .map((child) => {
      if (child.name === 'error') return `error:${child.getChildElements()[0]?.name ?? '?'}`;
      if (child.name === 'delay') return `delay:${attr(child, 'stamp') ?? '?'}`;
      return `${child.name}:${child.getText()}`;
    })
    .join(' ');
  return payload === '' ? head : `${head} [${payload}]`;
}
