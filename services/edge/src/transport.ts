// What a client stream needs from its connection, whether TCP (RFC 6120 §3) or WebSocket (RFC 7395).
import type { SecureContext } from 'node:tls';

export interface TransportEvents {
  data(chunk: Uint8Array): void;
  /** The connection is gone (closed by either side, or failed). Called once. */
  closed(): void;
}

export interface Transport {
  /** 'stream' for one XML document per direction (TCP); 'framed' for one element per message (WebSocket). */
  readonly framing: 'stream' | 'framed';
  readonly remoteAddress: string;
  /** Whether the bytes travel under TLS (direct TLS, or after STARTTLS). */
  readonly secure: boolean;
  /** Whether STARTTLS can still upgrade this connection. */
  readonly canStartTls: boolean;
  listen(events: TransportEvents): void;
  /** Writes text; for WebSocket, one message. Ignored once closing. */
  send(text: string): void;
  pause(): void;
  resume(): void;
  /**
   * Stops delivering input at once and drops whatever was already read (RFC 6120 §5.4.3.3: bytes after
   * `<starttls/>` must be discarded).
   */
  discardInput(): void;
  /** Upgrades the connection in place to TLS as the server, then resumes reading. */
  startTls(context: SecureContext): void;
  /** Closes after pending writes; the connection is destroyed if the peer lingers. */
  end(): void;
}
