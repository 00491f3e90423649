// RFC 6120 §3 and §5: a client connection over TCP, plain (upgradable with STARTTLS) or direct TLS (XEP-0368).
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Transport, TransportEvents } from './transport.ts';

/** How long a closing peer may take to close its side before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

export class SocketTransport implements Transport {
  readonly framing = 'stream';
  readonly remoteAddress: string;
  private socket: Socket;
  private upgradable: boolean;
  private events: TransportEvents | undefined;
  private discarding = false;
  private ending = false;
  private closed = false;
  private graceTimer: NodeJS.Timeout | undefined;

  /** `upgradable`: a plain c2s socket that may still negotiate STARTTLS. */
  constructor(socket: Socket, upgradable: boolean) {
    this.socket = socket;
    this.upgradable = upgradable;
    this.remoteAddress = socket.remoteAddress ?? 'unknown';
    this.attach(socket);
  }

  get secure(): boolean {
    return this.socket instanceof TLSSocket;
  }

  get canStartTls(): boolean {
    return this.upgradable && !this.secure;
  }

  listen(events: TransportEvents): void {
    this.events = events;
  }

  send(text: string): void {
    if (!this.ending && !this.closed) this.socket.write(text);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.discarding) this.socket.resume();
  }

  discardInput(): void {
    this.discarding = true;
    this.socket.pause();
  }

  startTls(context: SecureContext): void {
    const plain = this.socket;
    plain.removeAllListeners('data');
    // Data the plain socket already buffered stays there: it was sent before the TLS handshake.
    const secure = new TLSSocket(plain, { isServer: true, secureContext: context });
    this.socket = secure;
    this.upgradable = false;
    this.discarding = false;
    this.attach(secure);
  }

  end(): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    this.socket.end();
    this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
  }

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      if (!this.discarding && socket === this.socket) this.events?.data(chunk);
    });
    // Errors end the connection; 'close' follows and reports it.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (socket !== this.socket || this.closed) return;
      this.closed = true;
      clearTimeout(this.graceTimer);
      this.events?.closed();
    });
  }
}
