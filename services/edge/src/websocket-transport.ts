// RFC 7395: a client connection over WebSocket, one XML element per message; TLS, if any, is the HTTP layer's.
import type { SecureContext } from 'node:tls';
import type { RawData, WebSocket } from 'ws';
import type { Transport, TransportEvents } from './transport.ts';

/** How long the WebSocket closing handshake may take before the connection is dropped. */
const CLOSE_GRACE_MS = 2000;

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}

export class WebSocketTransport implements Transport {
  readonly framing = 'framed';
  readonly remoteAddress: string;
  readonly secure: boolean;
  readonly canStartTls = false;
  private readonly socket: WebSocket;
  private events: TransportEvents | undefined;
  private discarding = false;
  private ending = false;
  private closed = false;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(socket: WebSocket, remoteAddress: string, secure: boolean) {
    this.socket = socket;
    this.remoteAddress = remoteAddress;
    this.secure = secure;
    socket.on('message', (data) => {
      if (!this.discarding) this.events?.data(toBytes(data));
    });
    socket.on('error', () => socket.terminate());
    socket.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.graceTimer);
      this.events?.closed();
    });
  }

  listen(events: TransportEvents): void {
    this.events = events;
  }

  send(text: string): void {
    if (!this.ending && !this.closed) this.socket.send(text);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.discarding) this.socket.resume();
  }

  discardInput(): void {
    this.discarding = true;
  }

  startTls(_context: SecureContext): void {
    throw new Error('STARTTLS is not available over WebSocket');
  }

  end(): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    this.socket.close(1000);
    this.graceTimer = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS);
  }
}
