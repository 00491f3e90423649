// Test support: an edge on ephemeral ports with the embedded adapters, and the client side of a login.
import { randomBytes } from 'node:crypto';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import {
  decodeEnvelope,
  parseConfig,
  silentLogger,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
  type Envelope,
} from '@starling/core';
import type { StanzaBus, Store } from '@starling/ports';
import { openSqliteStore } from '@starling/store';
import {
  deriveAllScramKeys,
  digest,
  hmac,
  NS_BIND,
  NS_SASL,
  NS_TLS,
  saltedPassword,
  xorBuffers,
  type Element,
} from '@starling/xmpp';
import { startEdge, type EdgeHandle } from './index.ts';
import { testCertificate } from './test-cert.ts';
import { TestClient } from './test-client.ts';

export const DOMAIN = 'localhost';
export const PASSWORD = 'r0m30myr0m30';

interface TopicRecords {
  readonly records: Envelope[];
  waiter: (() => void) | undefined;
}

export interface TestEdge {
  readonly edge: EdgeHandle;
  readonly bus: ControlledBus;
  readonly registry: MemorySessionRegistry;
  readonly delivery: LocalDelivery;
  readonly store: Store;
  /** The next envelope published on `topic`, in publish order. */
  next(topic: typeof TOPIC_STANZAS | typeof TOPIC_PRESENCE): Promise<Envelope>;
  /** Envelopes published on `topic` so far and not yet taken by `next`. */
  pending(topic: typeof TOPIC_STANZAS | typeof TOPIC_PRESENCE): readonly Envelope[];
  close(): Promise<void>;
}

/**
 * A bus in front of the real one whose publishes can be held back, refused, or watched, to test what
 * the edge does while the bus has not confirmed.
 */
export class ControlledBus implements StanzaBus {
  private readonly inner: StanzaBus;
  private held: (() => void)[] | undefined;
  /** Publishes whose value matches are refused. */
  refuse: RegExp | undefined;
  published = 0;
  /** Every value published, as it went to the bus. */
  readonly values: string[] = [];

  constructor(inner: StanzaBus) {
    this.inner = inner;
  }

  /** Publishes wait from now until `release()`. */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }

  async publish(topic: string, key: string, value: string): Promise<void> {
    this.published += 1;
    this.values.push(value);
    if (this.refuse?.test(value) === true) throw new Error('refused by test');
    const held = this.held;
    if (held !== undefined) await new Promise<void>((resolve) => held.push(resolve));
    await this.inner.publish(topic, key, value);
  }

  subscribe(...args: Parameters<StanzaBus['subscribe']>): ReturnType<StanzaBus['subscribe']> {
    return this.inner.subscribe(...args);
  }

  close(): Promise<void> {
    this.release();
    return this.inner.close();
  }
}

/**
 * Starts an edge on port 0 everywhere, with accounts juliet and romeo (password PASSWORD); envelopes in
 * JSON unless `compactEnvelopes`.
 */
export async function startTestEdge(
  settings: Record<string, unknown> = {},
  { compactEnvelopes = false }: { readonly compactEnvelopes?: boolean } = {},
): Promise<TestEdge> {
  const config = parseConfig({
    domain: DOMAIN,
    ...settings,
    listen: { address: '127.0.0.1', c2sPort: 0, directTlsPort: 0, httpPort: 0 },
  });
  const bus = new ControlledBus(new MemoryStanzaBus());
  const registry = new MemorySessionRegistry();
  const delivery = new LocalDelivery();
  const store = await openSqliteStore(':memory:');
  for (const username of ['juliet', 'romeo']) {
    await store.accounts.create({
      username,
      scram: await deriveAllScramKeys(PASSWORD, config.auth.scramIterations),
      createdAt: 0,
    });
  }
  const topics = new Map<string, TopicRecords>();
  for (const topic of [TOPIC_STANZAS, TOPIC_PRESENCE]) {
    const state: TopicRecords = { records: [], waiter: undefined };
    topics.set(topic, state);
    await bus.subscribe(topic, 'test', (record) => {
      state.records.push(decodeEnvelope(record.value));
      state.waiter?.();
      return Promise.resolve();
    });
  }
  const edge = await startEdge({
    config,
    bus,
    registry,
    store,
    delivery,
    log: silentLogger(),
    features: [],
    compactEnvelopes,
    edgeId: 'edge-test',
    tls: await testCertificate(),
  });
  const state = (topic: string): TopicRecords => {
    const found = topics.get(topic);
    if (!found) throw new Error(`no topic ${topic}`);
    return found;
  };
  return {
    edge,
    bus,
    registry,
    delivery,
    store,
    async next(topic) {
      const records = state(topic);
      for (;;) {
        const envelope = records.records.shift();
        if (envelope !== undefined) return envelope;
        await new Promise<void>((resolve) => {
          records.waiter = resolve;
        });
        records.waiter = undefined;
      }
    },
    pending: (topic) => [...state(topic).records],
    async close() {
      await edge.close();
      await bus.close();
      await store.close();
    },
  };
}

/** Opens a stream and returns the features the server offered. */
export async function openStream(client: TestClient): Promise<Element> {
  client.open(DOMAIN);
  await client.header();
  return client.element();
}

/** STARTTLS on a fresh c2s connection; returns the features of the TLS stream. */
export async function startTls(client: TestClient): Promise<Element> {
  await openStream(client);
  client.send(`<starttls xmlns='${NS_TLS}'/>`);
  const proceed = await client.element();
  if (proceed.name !== 'proceed') throw new Error(`expected proceed, got ${proceed.toString()}`);
  await client.startTls();
  return openStream(client);
}

/** The `k=v` attributes of a SCRAM message. */
function scramAttributes(message: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const field of message.split(',')) attrs[field.slice(0, 1)] = field.slice(2);
  return attrs;
}

const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');

/** SCRAM-SHA-256 as a client (RFC 5802 §3); returns the server's last answer. */
export async function scramLogin(client: TestClient, username: string, password: string): Promise<Element> {
  const nonce = randomBytes(12).toString('base64');
  const first = `n=${username},r=${nonce}`;
  client.send(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-256'>${b64(`n,,${first}`)}</auth>`);
  const challenge = await client.element();
  if (challenge.name !== 'challenge') return challenge;
  const serverFirst = Buffer.from(challenge.getText(), 'base64').toString();
  const attrs = scramAttributes(serverFirst);
  const salted = await saltedPassword(
    'SHA-256',
    password,
    Buffer.from(attrs.s ?? '', 'base64'),
    Number(attrs.i),
  );
  const clientKey = hmac('SHA-256', salted, 'Client Key');
  const withoutProof = `c=biws,r=${attrs.r ?? ''}`;
  const authMessage = `${first},${serverFirst},${withoutProof}`;
  const proof = xorBuffers(clientKey, hmac('SHA-256', digest('SHA-256', clientKey), authMessage));
  client.send(
    `<response xmlns='${NS_SASL}'>${b64(`${withoutProof},p=${proof.toString('base64')}`)}</response>`,
  );
  return client.element();
}

/** Authenticates (the stream is already open), restarts and binds; returns the bound full JID. */
export async function authenticateAndBind(
  client: TestClient,
  username = 'juliet',
  resource = 'balcony',
): Promise<string> {
  const answer = await scramLogin(client, username, PASSWORD);
  if (answer.name !== 'success') throw new Error(`login failed: ${answer.toString()}`);
  client.restart();
  await openStream(client);
  client.send(
    `<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='${NS_BIND}'><resource>${resource}</resource></bind></iq>`,
  );
  const result = await client.element();
  const jid = result.getChild('bind', NS_BIND)?.getChildText('jid');
  if (result.attrs.type !== 'result' || !jid) throw new Error(`bind failed: ${result.toString()}`);
  return jid;
}

/** A c2s client through STARTTLS, SCRAM and bind. */
export async function loggedIn(
  edge: TestEdge,
  username = 'juliet',
  resource = 'balcony',
): Promise<{ client: TestClient; jid: string }> {
  const client = await TestClient.tcp(edge.edge.ports.c2s);
  await startTls(client);
  const jid = await authenticateAndBind(client, username, resource);
  return { client, jid };
}
