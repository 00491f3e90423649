// A raw-socket XMPP client for conformance scenarios a well-behaved library never produces: it writes
// exact bytes and reads the server's exact output.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { ClientEndpoint } from './client.ts';
import type { TestServer } from './server.ts';
import { EXPECT_TIMEOUT_MS } from './shape.ts';

export class RawClient {
  private socket: Socket | TLSSocket;
  private buffer = '';
  private consumed = 0;
  private listeners: (() => void)[] = [];
  private ended = false;
  private readonly decoder = new TextDecoder();
  readonly closed: Promise<void>;
  private resolveClosed: () => void = () => undefined;

  private constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.attach(socket);
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += this.decoder.decode(chunk, { stream: true });
      this.notify();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.notify();
      this.resolveClosed();
    });
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Connects to `edge`, by default the server's next edge (see `TestServer.nextEdge`). */
  static async connect(
    server: TestServer,
    port: 'c2s' | 'directTls' = 'c2s',
    edge: ClientEndpoint = server.nextEdge(),
  ): Promise<RawClient> {
    const socket =
      port === 'c2s'
        ? netConnect({ host: edge.host, port: edge.ports.c2s })
        : tlsConnect({
            host: edge.host,
            port: edge.ports.directTls,
            ca: server.cert,
            servername: server.domain,
          });
    await new Promise<void>((resolve, reject) => {
      socket.once(port === 'c2s' ? 'connect' : 'secureConnect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  write(data: string | Uint8Array): void {
    this.socket.write(data);
  }

  /** Everything received so far, including what `read` already returned. */
  get transcript(): string {
    return this.buffer;
  }

  /**
   * Waits until the output after the last read contains `pattern`; returns that output up to and
   * including the match, and moves past it.
   */
  read(pattern: string | RegExp, timeout = EXPECT_TIMEOUT_MS): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const rest = this.buffer.slice(this.consumed);
        const match =
          typeof pattern === 'string'
            ? { index: rest.indexOf(pattern), length: pattern.length }
            : find(rest, pattern);
        if (match.index !== -1) {
          const end = match.index + match.length;
          this.consumed += end;
          done();
          resolve(rest.slice(0, end));
          return true;
        }
        if (this.ended) {
          done();
          reject(
            new Error(`connection closed before ${String(pattern)}; received after last read:\n${rest}`),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `no ${String(pattern)} within ${timeout} ms; received after last read:\n${this.buffer.slice(this.consumed)}`,
          ),
        );
      }, timeout);
      const listener = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
      };
      if (!check()) this.listeners.push(listener);
    });
  }

  /** Expects a stream error with `condition`, the closing tag, and the socket to close. */
  async expectStreamError(condition: string, timeout = EXPECT_TIMEOUT_MS): Promise<string> {
    const text = await this.read('</stream:stream>', timeout);
    const error = /<stream:error>([\s\S]*?)<\/stream:error>/.exec(text);
    if (!error) throw new Error(`no stream error before the end of the stream:\n${text}`);
    if (!new RegExp(`<${condition}[\\s/>]`).test(error[1] ?? '')) {
      throw new Error(`expected stream error ${condition}, got:\n${error[0]}`);
    }
    await this.closed;
    return error[0];
  }

  /** Upgrades the connection after the server's <proceed/>. */
  async startTls(server: TestServer): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, ca: server.cert, servername: server.domain });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function find(text: string, pattern: RegExp): { index: number; length: number } {
  const match = pattern.exec(text);
  return match ? { index: match.index, length: match[0].length } : { index: -1, length: 0 };
}

export function streamHeader(domain: string, extra = ''): string {
  return `<?xml version='1.0'?><stream:stream to='${domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'${extra}>`;
}

/** Opens a stream, upgrades with STARTTLS, authenticates with PLAIN and binds `resource`. Returns the full JID. */
export async function rawLogin(
  client: RawClient,
  server: TestServer,
  username: string,
  password: string,
  resource = 'raw',
): Promise<string> {
  await rawAuthenticate(client, server, username, password);
  client.write(
    `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`,
  );
  const bound = await client.read('</iq>');
  const jid = /<jid>([^<]+)<\/jid>/.exec(bound)?.[1];
  if (jid === undefined) throw new Error(`bind failed:\n${bound}`);
  return jid;
}

/**
 * Opens a stream, upgrades with STARTTLS, authenticates with PLAIN and restarts the stream; returns the
 * features offered then (where a client binds, or resumes a managed stream).
 */
export async function rawAuthenticate(
  client: RawClient,
  server: TestServer,
  username: string,
  password: string,
): Promise<string> {
  client.write(streamHeader(server.domain));
  await client.read('</stream:features>');
  client.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await client.read('<proceed');
  await client.read('/>');
  await client.startTls(server);
  client.write(streamHeader(server.domain));
  await client.read('</stream:features>');
  const plain = Buffer.from(`\0${username}\0${password}`).toString('base64');
  client.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
  await client.read('<success');
  client.write(streamHeader(server.domain));
  return client.read('</stream:features>');
}
