// Conversation-style clients for conformance scenarios: an independent library (@xmpp/client) for normal
// traffic, with an inbox that tests `expect` from.
import { client as xmppClient, type XmppClient } from '@xmpp/client';
import { WebSocket as WsWebSocket } from 'ws';
import { parseTrusted, type Element } from '@starling/xmpp';
import type { TestServer } from './server.ts';
import { EXPECT_TIMEOUT_MS, TEST_SHAPE } from './shape.ts';

// The test server's certificate is self-signed and @xmpp/client offers no way to pin it.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
// @xmpp/websocket uses the global WebSocket, which Node 20 does not have.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WsWebSocket;

export type Transport = 'starttls' | 'direct-tls' | 'websocket';

export type Match = (el: Element) => boolean;

const CONNECT_TIMEOUT = 15_000;
/**
 * How long `expectNothing` watches by default. In the cluster shape a stanza that should not come would
 * take its way through Kafka and another process or two, so the quiet period is longer there.
 */
const QUIET_MS = TEST_SHAPE === 'cluster' ? 1000 : 300;

export class TestClient {
  readonly jid: string;
  readonly bare: string;
  private readonly xmpp: XmppClient;
  private readonly inbox: Element[] = [];
  private waiters: { match: Match; resolve: (el: Element) => void }[] = [];
  private nextId = 0;

  constructor(xmpp: XmppClient, jid: string) {
    this.xmpp = xmpp;
    this.jid = jid;
    this.bare = jid.split('/')[0] ?? jid;
    xmpp.on('stanza', (stanza: { toString(): string }) => this.take(parseTrusted(stanza.toString())));
  }

  private take(el: Element): void {
    const index = this.waiters.findIndex((w) => w.match(el));
    const waiter = this.waiters[index];
    if (waiter) {
      this.waiters.splice(index, 1);
      waiter.resolve(el);
    } else {
      this.inbox.push(el);
    }
  }

  /**
   * Sends XML written in the test; `from` is stamped by the server. The content namespace is added when
   * absent, as WebSocket framing (RFC 7395 §3.3.3) requires it on every element.
   */
  async send(xml: string): Promise<void> {
    const el = parseTrusted(xml);
    el.attrs.xmlns ??= 'jabber:client';
    await this.xmpp.write(el.toString());
  }

  /** Resolves with (and removes from the inbox) the first stanza that matches, waiting up to `timeout` ms. */
  expect(match: Match, timeout = EXPECT_TIMEOUT_MS): Promise<Element> {
    const index = this.inbox.findIndex(match);
    const found = this.inbox[index];
    if (found) {
      this.inbox.splice(index, 1);
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (el: Element) => {
          clearTimeout(timer);
          resolve(el);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const seen = this.inbox.map((el) => el.toString()).join('\n  ');
        reject(new Error(`${this.jid}: no matching stanza within ${timeout} ms; inbox:\n  ${seen}`));
      }, timeout);
      this.waiters.push(waiter);
    });
  }

  /** Sends an IQ (the id is filled in when absent) and resolves with its result or error. */
  async iq(xml: string, timeout = EXPECT_TIMEOUT_MS): Promise<Element> {
    const request = parseTrusted(xml);
    const id = (request.attrs.id as string | undefined) ?? `t${++this.nextId}`;
    request.attrs.id = id;
    request.attrs.xmlns ??= 'jabber:client';
    const reply = this.expect(
      (el) =>
        el.name === 'iq' && el.attrs.id === id && (el.attrs.type === 'result' || el.attrs.type === 'error'),
      timeout,
    );
    await this.send(request.toString());
    return reply;
  }

  /** Stanzas received and not yet taken by `expect`. */
  pending(): readonly Element[] {
    return this.inbox;
  }

  /**
   * Waits `ms` and fails if a matching stanza arrived meanwhile. Only for asserting that something is
   * NOT delivered, where there is no event to wait for.
   */
  async expectNothing(match: Match, ms = QUIET_MS): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const found = this.inbox.find(match);
    if (found) throw new Error(`${this.jid}: unexpected stanza ${found.toString()}`);
  }

  /** Sends through the library's stanza pipeline, so its XEP-0198 layer counts and queues the stanza. */
  async sendCounted(xml: string): Promise<void> {
    const el = parseTrusted(xml);
    el.attrs.xmlns ??= 'jabber:client';
    await this.xmpp.send(el);
  }

  /** The library's XEP-0198 state (enabled when the server offered stream management). */
  streamManagement(): { enabled: boolean; id: string; outbound: number; inbound: number } {
    const { enabled, id, outbound, inbound } = this.xmpp.streamManagement;
    return { enabled, id, outbound, inbound };
  }

  async stop(): Promise<void> {
    this.xmpp.reconnect.stop();
    await this.xmpp.stop();
  }
}

export interface ConnectOptions {
  readonly username: string;
  readonly password: string;
  readonly resource?: string;
  readonly transport?: Transport;
}

/** What a client needs to reach a server: the embedded test server, or one edge of a cluster. */
export type ClientEndpoint = Pick<TestServer, 'host' | 'ports' | 'domain'>;

export function serviceUrl(server: ClientEndpoint, transport: Transport): string {
  switch (transport) {
    case 'starttls':
      return `xmpp://${server.host}:${server.ports.c2s}`;
    case 'direct-tls':
      return `xmpps://${server.host}:${server.ports.directTls}`;
    case 'websocket':
      return `ws://${server.host}:${server.ports.http}/xmpp-websocket`;
  }
}

/**
 * Connects, authenticates and binds with @xmpp/client: to `server`'s next edge when it is a test server
 * (in the cluster shape the sessions of a scenario take the edges in turn), else to that endpoint.
 */
export async function connect(
  server: ClientEndpoint | TestServer,
  options: ConnectOptions,
): Promise<TestClient> {
  const endpoint = 'nextEdge' in server ? server.nextEdge() : server;
  const xmpp = xmppClient({
    service: serviceUrl(endpoint, options.transport ?? 'starttls'),
    domain: endpoint.domain,
    // The library waits 2 s for each stream open; a loaded 2-core CI machine running TLS handshakes for
    // several test files at once can take longer than that without anything being wrong.
    timeout: CONNECT_TIMEOUT,
    username: options.username,
    password: options.password,
    ...(options.resource === undefined ? {} : { resource: options.resource }),
  });
  xmpp.on('error', () => undefined);
  const jid = await xmpp.start();
  xmpp.reconnect.stop();
  return new TestClient(xmpp, jid.toString());
}
