// Test support: a raw XMPP client over TCP, TLS or WebSocket that reads the server's stream element by element.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { StreamParser, type Element, type StreamError } from '@starling/xmpp';

type Event =
  | { readonly kind: 'header'; readonly attrs: Record<string, string> }
  | { readonly kind: 'element'; readonly el: Element }
  | { readonly kind: 'end' }
  | { readonly kind: 'error'; readonly err: StreamError };

const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 64, maxChildren: 4096 };

/** Reads what a server sends; every wait rejects if the connection closes first. */
export class TestClient {
  private socket: Socket | undefined;
  private readonly ws: WebSocket | undefined;
  private parser: StreamParser;
  private readonly events: Event[] = [];
  private waiter: (() => void) | undefined;
  private isClosed = false;
  /** Resolves when the connection is closed. */
  readonly closed: Promise<void>;
  private markClosed: () => void = () => undefined;

  private constructor(transport: Socket | WebSocket) {
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    if (transport instanceof WebSocket) {
      this.ws = transport;
      transport.on('message', (data: Buffer) => this.parser.write(data));
      transport.on('close', () => this.onClose());
      transport.on('error', () => undefined);
    } else {
      this.attach(transport);
    }
    this.parser = this.newParser();
  }

  static tcp(port: number): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect(port, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve(new TestClient(socket));
      });
      socket.once('error', reject);
    });
  }

  static directTls(port: number): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
        socket.off('error', reject);
        resolve(new TestClient(socket));
      });
      socket.once('error', reject);
    });
  }

  static websocket(port: number, protocols: string[] = ['xmpp']): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, protocols);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new TestClient(ws));
      });
      ws.once('error', reject);
    });
  }

  get framed(): boolean {
    return this.ws !== undefined;
  }

  send(text: string): void {
    if (this.ws) this.ws.send(text);
    else this.socket?.write(text);
  }

  /** Sends the stream header (or <open/>) for `domain`. */
  open(domain: string, extra = "version='1.0'"): void {
    this.send(
      this.framed
        ? `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${domain}' ${extra}/>`
        : `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' ${extra}>`,
    );
  }

  /** The server's stream header attributes (from `<stream:stream>` or `<open/>`). */
  async header(): Promise<Record<string, string>> {
    const event = await this.nextEvent();
    if (event.kind === 'header') return event.attrs;
    if (event.kind === 'element' && event.el.name === 'open') return event.el.attrs;
    throw new Error(`expected a stream header, got ${describe(event)}`);
  }

  async element(): Promise<Element> {
    const event = await this.nextEvent();
    if (event.kind !== 'element') throw new Error(`expected an element, got ${describe(event)}`);
    return event.el;
  }

  /** Waits for the server to end the stream (closing tag or `<close/>`). */
  async streamEnd(): Promise<void> {
    const event = await this.nextEvent();
    if (event.kind === 'end') return;
    if (event.kind === 'element' && event.el.name === 'close') return;
    throw new Error(`expected the stream to end, got ${describe(event)}`);
  }

  /** Waits for a stream error, its closing tag and the connection close; returns the condition. */
  async streamError(): Promise<string> {
    const el = await this.element();
    if (el.getName() !== 'error') throw new Error(`expected a stream error, got ${el.toString()}`);
    const condition = el.getChildElements().find((child) => child.name !== 'text')?.name ?? '';
    await this.streamEnd();
    await this.closed;
    return condition;
  }

  /** Upgrades the plain socket to TLS after `<proceed/>`, with a fresh parser for the new stream. */
  async startTls(): Promise<void> {
    const plain = this.socket;
    if (!plain) throw new Error('not a TCP client');
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    await new Promise<void>((resolve, reject) => {
      const secure = tlsConnect({ socket: plain, rejectUnauthorized: false }, () => resolve());
      secure.once('error', reject);
      this.attach(secure);
    });
    this.restart();
  }

  /** Starts reading a new stream (after STARTTLS or SASL success). */
  restart(): void {
    this.parser.close();
    this.parser = this.newParser();
  }

  close(): void {
    if (this.ws) this.ws.terminate();
    else this.socket?.destroy();
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (socket === this.socket) this.parser.write(chunk);
    });
    socket.on('close', () => {
      if (socket === this.socket) this.onClose();
    });
    socket.on('error', () => undefined);
  }

  private newParser(): StreamParser {
    return new StreamParser(this.framed ? 'framed' : 'stream', LIMITS, {
      streamStart: (attrs) => this.push({ kind: 'header', attrs }),
      element: (el) => this.push({ kind: 'element', el }),
      streamEnd: () => this.push({ kind: 'end' }),
      error: (err) => this.push({ kind: 'error', err }),
    });
  }

  private push(event: Event): void {
    this.events.push(event);
    this.waiter?.();
  }

  private onClose(): void {
    this.isClosed = true;
    this.markClosed();
    this.waiter?.();
  }

  private async nextEvent(): Promise<Event> {
    for (;;) {
      const event = this.events.shift();
      if (event !== undefined) return event;
      if (this.isClosed) throw new Error('connection closed');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
      this.waiter = undefined;
    }
  }
}

function describe(event: Event): string {
  switch (event.kind) {
    case 'header':
      return 'a stream header';
    case 'element':
      return event.el.toString();
    case 'end':
      return 'the stream end';
    case 'error':
      return `a parse error (${event.err.message})`;
  }
}
