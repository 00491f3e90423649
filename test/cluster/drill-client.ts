// A raw-socket client for the fault drills: logs in with the harness's RawClient (STARTTLS, PLAIN, bind),
// optionally enables XEP-0198 without resumption, and keeps every element the server sent afterwards,
// parsed and stamped with the time it was seen, so a drill can count what arrived and when.
import { StreamParser, type Element } from '@starling/xmpp';
import { RawClient, rawLogin, type ClientEndpoint, type TestServer } from '../harness/index.ts';

const NS_SM = 'urn:xmpp:sm:3';
/** How often the transcript is parsed for new elements (and so the resolution of arrival times). */
const PUMP_MS = 20;
const LIMITS = { maxStanzaBytes: 16 * 1024 * 1024, maxDepth: 64, maxAttributes: 256, maxChildren: 100_000 };

/** What RawClient and rawLogin need to reach an edge over TLS. */
export type TlsTarget = Pick<TestServer, 'domain' | 'cert'>;

export interface Received {
  readonly el: Element;
  /** Date.now() when the element was parsed (within PUMP_MS of its arrival). */
  readonly at: number;
}

export class DrillClient {
  readonly jid: string;
  readonly bare: string;
  readonly #raw: RawClient;
  /** Where the post-login part of the transcript starts, and how far it has been parsed. */
  #fed: number;
  readonly #parser: StreamParser;
  readonly #received: Received[] = [];
  readonly #timer: NodeJS.Timeout;
  #acksSeen = 0;
  #parseError: string | undefined;

  private constructor(raw: RawClient, jid: string) {
    this.#raw = raw;
    this.jid = jid;
    this.bare = jid.split('/')[0] ?? jid;
    this.#fed = raw.transcript.length;
    this.#parser = new StreamParser('stream', LIMITS, {
      streamStart: () => undefined,
      element: (el) => {
        if (el.is('a', NS_SM)) this.#acksSeen += 1;
        this.#received.push({ el, at: Date.now() });
      },
      streamEnd: () => undefined,
      error: (err) => (this.#parseError = err.message),
    });
    // The stream header was read during login; the parser sees its own copy.
    this.#parser.write(
      Buffer.from(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
      ),
    );
    this.#timer = setInterval(() => this.#pump(), PUMP_MS);
    this.#timer.unref();
  }

  /** Connects to `edge` with STARTTLS, authenticates with PLAIN and binds `resource`. */
  static async login(
    target: TlsTarget,
    edge: ClientEndpoint,
    username: string,
    password: string,
    resource: string,
  ): Promise<DrillClient> {
    // RawClient and rawLogin read only the domain and certificate of the server (and the given edge).
    const server = { ...target, host: edge.host, ports: edge.ports } as TestServer;
    const raw = await RawClient.connect(server, 'c2s', edge);
    const jid = await rawLogin(raw, server, username, password, resource);
    return new DrillClient(raw, jid);
  }

  #pump(): void {
    const text = this.#raw.transcript;
    if (text.length === this.#fed) return;
    const chunk = text.slice(this.#fed);
    this.#fed = text.length;
    this.#parser.write(Buffer.from(chunk));
  }

  /** Every element received since login, oldest first. */
  received(): readonly Received[] {
    this.#pump();
    if (this.#parseError !== undefined) throw new Error(`${this.jid}: unparsable input: ${this.#parseError}`);
    return this.#received;
  }

  /** Message stanzas received (not errors), in arrival order. */
  messages(): Received[] {
    return this.received().filter((r) => r.el.name === 'message' && r.el.attrs.type !== 'error');
  }

  /** Ids of the message stanzas received, in arrival order, repeats included. */
  messageIds(): string[] {
    return this.messages().flatMap((r) => (typeof r.el.attrs.id === 'string' ? [r.el.attrs.id] : []));
  }

  /** Ids of the stanzas the server answered with an error. */
  errorIds(): string[] {
    return this.received().flatMap((r) =>
      r.el.attrs.type === 'error' && typeof r.el.attrs.id === 'string' ? [r.el.attrs.id] : [],
    );
  }

  write(xml: string): void {
    this.#raw.write(xml);
  }

  /** Waits for the first element received since login that matches (already received ones included). */
  async waitFor(match: (el: Element) => boolean, timeoutMs: number, what: string): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received().find((r) => match(r.el));
      if (found) return found;
      if (Date.now() > deadline) {
        const tail = this.#received
          .slice(-10)
          .map((r) => r.el.toString())
          .join('\n  ');
        throw new Error(`${this.jid}: no ${what} within ${timeoutMs} ms; last received:\n  ${tail}`);
      }
      await new Promise((resolve) => setTimeout(resolve, PUMP_MS));
    }
  }

  /** Sends an IQ and waits for its result (or error). */
  async iq(xml: string, id: string, timeoutMs: number): Promise<Element> {
    this.write(xml);
    const reply = await this.waitFor(
      (el) => el.name === 'iq' && el.attrs.id === id && el.attrs.type !== 'get' && el.attrs.type !== 'set',
      timeoutMs,
      `answer to iq ${id}`,
    );
    return reply.el;
  }

  /** XEP-0198 without resumption: from here on the server counts this stream's stanzas. */
  async enableStreamManagement(timeoutMs: number): Promise<void> {
    this.write(`<enable xmlns='${NS_SM}'/>`);
    await this.waitFor((el) => el.is('enabled', NS_SM), timeoutMs, '<enabled/>');
  }

  /**
   * `<r/>`, and the `h` of the server's answer: the number of stanzas since `<enable/>` that the server
   * counts as handled (for a stanza going to the bus: confirmed by it, or answered with an error).
   */
  async requestAck(timeoutMs: number): Promise<number> {
    this.received();
    const before = this.#acksSeen;
    this.write(`<r xmlns='${NS_SM}'/>`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.received();
      if (this.#acksSeen > before) {
        const answer = this.#received.findLast((r) => r.el.is('a', NS_SM));
        const h = Number(answer?.el.attrs.h);
        if (!Number.isInteger(h)) throw new Error(`${this.jid}: <a/> without a valid h`);
        return h;
      }
      if (Date.now() > deadline) throw new Error(`${this.jid}: no <a/> within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, PUMP_MS));
    }
  }

  /** Ends the stream and the connection. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#raw.write('</stream:stream>');
    this.#raw.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#raw.closed, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
    clearTimeout(timer);
    this.#raw.destroy();
  }
}
