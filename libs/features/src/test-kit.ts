// Test support for router-side features: real hooks, IQ table and routing over the adapters a test passes in.
import { randomUUID } from 'node:crypto';
import {
  Hooks,
  parseConfig,
  setupFeatures,
  silentLogger,
  type ConfigInput,
  type Feature,
  type FeatureHost,
  type IqTarget,
  type Role,
  type Routing,
} from '@starling/core';
import type { Delivery, SessionRecord, SessionRegistry, StanzaBus, Store } from '@starling/ports';
import {
  attr,
  deriveScramKeys,
  Jid,
  NS_STANZAS,
  parseTrusted,
  type Element,
  type StreamErrorCondition,
} from '@starling/xmpp';
import { createRouting } from './rfc6121-routing/index.ts';

/** The adapters a kit runs on; tests pass the real in-process ones. */
export interface Backends {
  readonly bus: StanzaBus;
  readonly registry: SessionRegistry;
  readonly delivery: Delivery;
  readonly store: Store;
}

export const DOMAIN = 'example.com';
const EDGE = 'edge-test';

/** A record published on the bus, as the kit saw it. */
export interface Published {
  readonly topic: string;
  readonly key: string;
  readonly value: string;
}

function recordingBus(inner: StanzaBus, published: Published[]): StanzaBus {
  return {
    async publish(topic, key, value, headers) {
      published.push({ topic, key, value });
      await inner.publish(topic, key, value, headers);
    },
    subscribe: (topic, group, handler) => inner.subscribe(topic, group, handler),
    close: () => inner.close(),
  };
}

export class FeatureKit {
  readonly backends: Backends;
  readonly host: FeatureHost;
  readonly routing: Routing;
  /** Everything the kit's bus was asked to publish, in order. */
  readonly published: Published[];
  /** Sessions told to close, with the stream error. */
  readonly closed: { jid: string; condition: StreamErrorCondition }[] = [];
  /** Every delivery the edge took, in order: "jid xml" or "jid close condition". */
  readonly trace: string[] = [];
  readonly #inboxes = new Map<string, Element[]>();
  /** Sessions still in the registry whose edge no longer holds them. */
  readonly #gone = new Set<string>();
  #listener: { close(): Promise<void> } | undefined;

  private constructor(backends: Backends, host: FeatureHost, routing: Routing, published: Published[]) {
    this.backends = backends;
    this.host = host;
    this.routing = routing;
    this.published = published;
  }

  /** Sets up `features` in `role` with a config for DOMAIN plus `config`, and listens as the test edge. */
  static async open(
    backends: Backends,
    features: readonly Feature[],
    options: { role?: Role; config?: ConfigInput; archiveInProcess?: boolean } = {},
  ): Promise<FeatureKit> {
    const config = parseConfig({ ...options.config, domain: DOMAIN });
    const log = silentLogger();
    const published: Published[] = [];
    const bus = recordingBus(backends.bus, published);
    const hooks = new Hooks();
    const routing = createRouting({ ...backends, bus, config, hooks, log });
    const host = await setupFeatures(
      options.role ?? 'router',
      { ...backends, bus, config, log, features, archiveInProcess: options.archiveInProcess === true },
      routing,
      hooks,
    );
    const kit = new FeatureKit(backends, host, routing, published);
    kit.#listener = await backends.delivery.listen(EDGE, (target, payload) => {
      if (kit.#gone.has(target.jid)) return Promise.resolve(false);
      const inbox = kit.#inboxes.get(target.jid);
      if (inbox === undefined) return Promise.resolve(false);
      if (payload.kind === 'stanza') {
        inbox.push(parseTrusted(payload.xml));
        kit.trace.push(`${target.jid} ${payload.xml}`);
      } else {
        kit.closed.push({ jid: target.jid, condition: payload.condition });
        kit.trace.push(`${target.jid} close ${payload.condition}`);
      }
      return Promise.resolve(true);
    });
    return kit;
  }

  get config(): FeatureHost['context']['config'] {
    return this.host.context.config;
  }

  get store(): Store {
    return this.backends.store;
  }

  /** Stops listening and closes every backend. */
  async close(): Promise<void> {
    await this.#listener?.close();
    await this.backends.bus.close();
    await this.backends.delivery.close();
    await this.backends.registry.close();
    await this.backends.store.close();
  }

  /** Creates an account (credentials are irrelevant to these tests, so derivation is the cheapest). */
  async addUser(username: string): Promise<void> {
    const keys = await deriveScramKeys('SHA-256', 'secret', 4096);
    await this.store.accounts.create({
      username,
      scram: { 'SHA-1': keys, 'SHA-256': keys },
      createdAt: Date.now(),
    });
  }

  /** Binds `jid` on the test edge; what reaches it collects in its inbox. */
  async bind(
    jid: string,
    state: { priority?: number; available?: boolean; interested?: boolean; presence?: string } = {},
  ): Promise<SessionRecord> {
    const record: SessionRecord = {
      jid,
      sessionId: randomUUID(),
      edgeId: EDGE,
      boundAt: Date.now(),
      priority: state.priority ?? 0,
      available: state.available ?? true,
      interested: state.interested ?? false,
      ...(state.presence === undefined ? {} : { presence: state.presence }),
    };
    await this.backends.registry.bind(record);
    this.#inboxes.set(jid, []);
    return record;
  }

  /** Leaves `jid` in the registry but makes its edge refuse deliveries, as when a stream just ended. */
  vanish(jid: string): void {
    this.#gone.add(jid);
  }

  /** What reached `jid` since the last call, as XML strings. */
  take(jid: string): string[] {
    const inbox = this.#inboxes.get(jid) ?? [];
    this.#inboxes.set(jid, []);
    return inbox.map((el) => el.toString());
  }

  /**
   * Dispatches an IQ from the full JID `from` as the router host does: no 'to' or the domain means
   * the server or the own account; a bare JID means that account.
   */
  async iq(from: string, stanza: string): Promise<string> {
    const el = parseTrusted(stanza);
    el.attrs.from = from;
    const sender = Jid.parse(from);
    const toAttr = attr(el, 'to');
    const to = toAttr === undefined ? sender.bare() : Jid.parse(toAttr);
    const target: IqTarget = to.local === '' ? 'server' : 'account';
    return (await this.host.iq.dispatch(el, sender, to, target)).toString();
  }
}

/** The error of an error stanza as "type condition" (e.g. "cancel service-unavailable"), or undefined. */
export function errorOf(stanza: string): string | undefined {
  const el = parseTrusted(stanza);
  const error = el.attrs.type === 'error' ? el.getChild('error') : undefined;
  const condition = error?.getChildElements().find((child) => child.getNS() === NS_STANZAS);
  return error && condition ? `${attr(error, 'type') ?? ''} ${condition.name}` : undefined;
}

/** Drops the random id of a server-generated stanza (pushes), so it compares as XML. */
export function withoutId(stanza: string): string {
  const el = parseTrusted(stanza);
  delete el.attrs.id;
  return el.toString();
}
