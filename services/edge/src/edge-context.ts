// What every client stream of one edge shares: dependencies, TLS, throttling, caps and the local session table.
import type { SecureContext } from 'node:tls';
import type { RoleDeps } from '@starling/core';
import type { DeliveryPayload } from '@starling/ports';
import type { SaslServerOptions } from '@starling/features';
import type { IngressBudget } from './ingress-budget.ts';
import type { LoginThrottle } from './login-throttle.ts';
import type { Caps } from './stream-features.ts';

/** A bound local session, as Delivery reaches it. */
export interface LocalSession {
  /** Whether a delivery addressed to this full JID is this session's. */
  accepts(jid: string): boolean;
  /** Writes the payload to the stream (queued first when it is managed); false if the stream is going away. */
  deliver(payload: DeliveryPayload): boolean | Promise<boolean>;
}

export interface EdgeContext {
  readonly deps: RoleDeps;
  readonly edgeId: string;
  /** The domain as a prepared domainpart. */
  readonly domain: string;
  readonly secureContext: SecureContext;
  readonly throttle: LoginThrottle;
  readonly caps: Caps | undefined;
  readonly sasl: SaslServerOptions;
  /** Sessions of this edge by session id; Delivery looks them up here. */
  readonly sessions: Map<string, LocalSession>;
  /** Publishes of all this edge's streams that the bus has not confirmed yet. */
  readonly ingress: IngressBudget;
}
