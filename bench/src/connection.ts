// One benchmark client connection: a lean XMPP client over a raw socket. Handshakes wait for patterns in
// the text the server sent; once a session runs, incoming text is only scanned for the markers that
// senders put into bodies and statuses, so that thousands of connections cost the load generator little.
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { digest, hmac, saltedPassword, xorBuffers } from '@starling/xmpp';

export type Transport = 'plain' | 'starttls' | 'tls';

export interface Target {
  readonly host: string;
  readonly domain: string;
  readonly c2sPort: number;
  readonly directTlsPort: number;
}

/** A marker found in received text: who sent it, its sequence number and when it left (ms, timeOrigin-based). */
export type MarkerHandler = (seq: number, sentAt: number, receivedAt: number) => void;

const NS_STREAM = 'http://etherx.jabber.org/streams';
const NS_SM = 'urn:xmpp:sm:3';
const HANDSHAKE_MS = 30_000;
const MARKER = /bm:(\d+):(\d+\.\d+)/g;
/** Top-level stanzas counted for XEP-0198's handled count; no test scenario nests them. */
const STANZA = /<(?:message|presence|iq)[\s>/]/g;
/** Errors that end a wait. */
const REFUSAL = /<stream:error|<failure\b|<\/stream:stream>/g;
/** The longest element a handshake or set-up step waits for (a roster of 200 contacts is about 20 KB). */
const MAX_AWAITED = 64 * 1024;
const ACK_REQUEST = /<r\s+xmlns=['"]urn:xmpp:sm:3['"]\s*\/>/g;

/** The salted password per salt and iteration count: PBKDF2 is the load generator's dearest step. */
const saltedCache = new Map<string, Buffer>();

export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** A body or status that carries a marker for latency measurement, padded to `size` characters. */
export function markerText(seq: number, size: number): string {
  const marker = `bm:${String(seq)}:${now().toFixed(3)}`;
  return marker.length >= size ? marker : `${marker} ${'x'.repeat(size - marker.length - 1)}`;
}

export class ProtocolError extends Error {}

interface Waiter {
  /** The awaited pattern with the global flag, so a search can start where the last one left off. */
  readonly pattern: RegExp;
  /** How far the buffer was searched already. */
  searched: number;
  readonly resolve: (match: RegExpExecArray) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class Connection {
  private socket: Socket | TLSSocket;
  private buffer = '';
  private waiter: Waiter | undefined;
  private closedError: Error | undefined;
  private decoder = new TextDecoder();
  /** Stanzas received since stream management was enabled (XEP-0198's h). */
  handled = 0;
  private counting = false;
  smId: string | undefined;
  jid = '';
  onMarker: MarkerHandler | undefined;

  readonly target: Target;

  private constructor(socket: Socket | TLSSocket, target: Target) {
    this.socket = socket;
    this.target = target;
    this.attach(socket);
  }

  static async open(target: Target, transport: Transport): Promise<Connection> {
    const socket =
      transport === 'tls'
        ? tlsConnect({
            host: target.host,
            port: target.directTlsPort,
            servername: target.domain,
            rejectUnauthorized: false,
          })
        : netConnect({ host: target.host, port: target.c2sPort });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once(transport === 'tls' ? 'secureConnect' : 'connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    });
    const connection = new Connection(socket, target);
    await connection.openStream();
    if (transport === 'starttls') await connection.startTls();
    return connection;
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += this.decoder.decode(chunk, { stream: true });
      this.consume();
    });
    socket.on('error', (err: Error) => this.fail(err));
    socket.on('close', () => this.fail(new ProtocolError('connection closed')));
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    const waiter = this.waiter;
    if (waiter === undefined) return;
    this.waiter = undefined;
    clearTimeout(waiter.timer);
    waiter.reject(err);
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  private consume(): void {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      // What arrives while a client waits can be long (roster pushes during a set-up): each search starts
      // shortly before the text searched last time, so waiting stays linear in what arrived.
      const from = Math.max(0, waiter.searched - MAX_AWAITED);
      waiter.searched = this.buffer.length;
      waiter.pattern.lastIndex = from;
      const match = waiter.pattern.exec(this.buffer);
      if (match !== null) {
        this.waiter = undefined;
        clearTimeout(waiter.timer);
        this.buffer = this.buffer.slice(match.index + match[0].length);
        waiter.resolve(match);
        return;
      }
      REFUSAL.lastIndex = from;
      if (REFUSAL.test(this.buffer)) {
        this.waiter = undefined;
        clearTimeout(waiter.timer);
        waiter.reject(new ProtocolError(`server refused: ${this.buffer.slice(0, 400)}`));
      }
      return;
    }
    this.scan();
  }

  /** Session traffic: markers, the handled count and acknowledgement requests; keeps only an unfinished tail. */
  private scan(): void {
    const text = this.buffer;
    const end = text.lastIndexOf('>') + 1;
    if (end === 0) return;
    const receivedAt = now();
    const onMarker = this.onMarker;
    if (onMarker !== undefined) {
      MARKER.lastIndex = 0;
      for (let m = MARKER.exec(text); m !== null && m.index < end; m = MARKER.exec(text)) {
        onMarker(Number(m[1]), Number(m[2]), receivedAt);
      }
    }
    const done = text.slice(0, end);
    if (this.counting) {
      this.handled += done.match(STANZA)?.length ?? 0;
      const requests = done.match(ACK_REQUEST)?.length ?? 0;
      if (requests > 0) this.write(`<a xmlns='${NS_SM}' h='${String(this.handled)}'/>`);
    }
    this.buffer = text.slice(end);
  }

  /** Waits for `pattern` in what the server sends next, then drops the text up to the match. */
  expect(pattern: RegExp, timeoutMs = HANDSHAKE_MS): Promise<RegExpExecArray> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(
          new ProtocolError(`timed out waiting for ${pattern.source}; got: ${this.buffer.slice(0, 400)}`),
        );
      }, timeoutMs);
      const global = new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`);
      this.waiter = { pattern: global, searched: 0, resolve, reject, timer };
      this.consume();
    });
  }

  write(text: string): void {
    if (this.closedError === undefined) this.socket.write(text);
  }

  private async openStream(): Promise<string> {
    this.write(
      `<?xml version='1.0'?><stream:stream to='${this.target.domain}' xmlns='jabber:client' ` +
        `xmlns:stream='${NS_STREAM}' version='1.0'>`,
    );
    const match = await this.expect(/<stream:features[^>]*?(?:\/>|>([\s\S]*?)<\/stream:features>)/);
    return match[1] ?? '';
  }

  private async startTls(): Promise<void> {
    this.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
    await this.expect(/<proceed[^>]*\/>/);
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = tlsConnect({ socket: plain, servername: this.target.domain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => {
        secure.off('error', reject);
        resolve();
      });
      secure.once('error', reject);
    });
    this.socket = secure;
    this.buffer = '';
    this.decoder = new TextDecoder();
    this.attach(secure);
    await this.openStream();
  }

  /** XEP-0077 registration before authentication; an existing account counts as done. */
  async register(user: string, password: string): Promise<void> {
    this.write(
      `<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>${user}</username>` +
        `<password>${password}</password></query></iq>`,
    );
    const match = await this.expect(/<iq\b[^>]*\bid=['"]reg['"][^>]*?(?:\/>|>[\s\S]*?<\/iq>)/);
    if (/type=['"]result['"]/.test(match[0]) || /<conflict\b/.test(match[0])) return;
    throw new ProtocolError(`registration of ${user} failed: ${match[0]}`);
  }

  /** SCRAM-SHA-256 (RFC 5802, RFC 7677), a new stream, and optionally resource binding. */
  async authenticate(user: string, password: string): Promise<void> {
    const clientNonce = randomBytes(18).toString('base64');
    const clientFirstBare = `n=${user},r=${clientNonce}`;
    this.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` +
        `${Buffer.from(`n,,${clientFirstBare}`).toString('base64')}</auth>`,
    );
    const challenge = await this.expect(/<challenge[^>]*>([^<]*)<\/challenge>/);
    const serverFirst = Buffer.from(challenge[1] ?? '', 'base64').toString();
    const fields = new Map(serverFirst.split(',').map((part) => [part[0], part.slice(2)]));
    const nonce = fields.get('r') ?? '';
    const salt = fields.get('s') ?? '';
    const iterations = Number(fields.get('i'));
    if (!nonce.startsWith(clientNonce) || salt === '' || !(iterations > 0)) {
      throw new ProtocolError(`bad SCRAM challenge: ${serverFirst}`);
    }
    const cacheKey = `${salt}:${String(iterations)}`;
    let salted = saltedCache.get(cacheKey);
    if (salted === undefined) {
      salted = await saltedPassword('SHA-256', password, Buffer.from(salt, 'base64'), iterations);
      saltedCache.set(cacheKey, salted);
    }
    const clientFinalBare = `c=biws,r=${nonce}`;
    const authMessage = `${clientFirstBare},${serverFirst},${clientFinalBare}`;
    const clientKey = hmac('SHA-256', salted, 'Client Key');
    const signature = hmac('SHA-256', digest('SHA-256', clientKey), authMessage);
    const proof = xorBuffers(clientKey, signature).toString('base64');
    this.write(
      `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` +
        `${Buffer.from(`${clientFinalBare},p=${proof}`).toString('base64')}</response>`,
    );
    await this.expect(/<success[^>]*?(?:\/>|>[^<]*<\/success>)/);
    await this.openStream();
  }

  async bind(resource: string): Promise<void> {
    this.write(
      `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>` +
        `<resource>${resource}</resource></bind></iq>`,
    );
    const match = await this.expect(/<jid>([^<]+)<\/jid>/);
    this.jid = match[1] ?? '';
    await this.expect(/<\/iq>/);
  }

  /** Fetches the roster and returns how many items it has. */
  async roster(): Promise<number> {
    this.write(`<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>`);
    const match = await this.expect(/<iq\b[^>]*\bid=['"]roster['"][^>]*?(?:\/>|>([\s\S]*?)<\/iq>)/);
    return (match[1] ?? '').match(/<item\b/g)?.length ?? 0;
  }

  /** Enables XEP-0198 with resumption; counting starts now. */
  async enableStreamManagement(): Promise<void> {
    this.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
    const match = await this.expect(/<enabled\b[^>]*>/);
    this.smId = /\bid=['"]([^'"]+)['"]/.exec(match[0])?.[1];
    if (this.smId === undefined) throw new ProtocolError(`stream management without resumption: ${match[0]}`);
    this.handled = 0;
    this.counting = true;
  }

  /** Resumes a detached stream on this (authenticated) connection. */
  async resume(previous: string, handled: number): Promise<void> {
    this.write(`<resume xmlns='${NS_SM}' previd='${previous}' h='${String(handled)}'/>`);
    await this.expect(/<resumed\b[^>]*>/);
    this.smId = previous;
    this.handled = handled;
    this.counting = true;
    this.scan();
  }

  /** Starts session traffic: from here on, received text is only scanned. */
  startScanning(): void {
    this.scan();
  }

  /** Drops the connection without closing the stream, as a lost network would. */
  drop(): void {
    this.closedError ??= new ProtocolError('dropped');
    this.socket.destroy();
  }

  async close(): Promise<void> {
    if (this.closedError !== undefined) return;
    this.write('</stream:stream>');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }
}
