// Delivery port: router and presence hand a stanza, or a command, to the edge that holds a session.
import type { StreamErrorCondition } from '@starling/xmpp';

export interface DeliveryTarget {
  readonly edgeId: string;
  readonly sessionId: string;
  /** Full JID the session is bound to. */
  readonly jid: string;
}

export type DeliveryPayload =
  | { readonly kind: 'stanza'; readonly xml: string }
  /** Ends the session with a stream error (e.g. `conflict` when another stream bound the same JID). */
  | { readonly kind: 'close'; readonly condition: StreamErrorCondition; readonly text?: string };

/** The edge side: resolves true if the session exists on this edge and took the payload. */
export type DeliveryReceiver = (target: DeliveryTarget, payload: DeliveryPayload) => Promise<boolean>;

export interface DeliveryEndpoint {
  readonly address: string;
  close(): Promise<void>;
}

export interface Delivery {
  /** Resolves false when the session is not (or no longer) on that edge, so the caller can fall back. */
  deliver(target: DeliveryTarget, payload: DeliveryPayload): Promise<boolean>;
  /**
   * Makes this process the receiver for `edgeId`. `address` is where callers reach it (host:port), which
   * the edge advertises in its registry lease; '' for in-process delivery.
   */
  listen(edgeId: string, receiver: DeliveryReceiver): Promise<DeliveryEndpoint>;
  close(): Promise<void>;
}
