// What every role host (edge, router, presence) is given, and what it hands back. Chosen in main.ts.
import type { Delivery, SessionRegistry, StanzaBus, Store } from '@starling/ports';
import type { Config } from './config.ts';
import type { Feature } from './feature.ts';
import type { Logger } from './log.ts';

export interface RoleDeps {
  readonly config: Config;
  readonly bus: StanzaBus;
  readonly registry: SessionRegistry;
  readonly store: Store;
  readonly delivery: Delivery;
  readonly log: Logger;
  /** The enabled features, in registration order (see libs/features/src/index.ts). */
  readonly features: readonly Feature[];
  /**
   * Whether the edge may publish stanza envelopes in their compact form (topics.ts): only where every
   * reader runs this release or a later one, as in the embedded shape, whose bus is in the process. A
   * cluster leaves it off until a release after this one, so that during a rolling upgrade the routers
   * and presence pods not yet upgraded read what upgraded edges write. Default off.
   */
  readonly compactEnvelopes?: boolean;
}

export interface RoleHandle {
  /** Stops taking work, finishes what is in flight, releases sockets and subscriptions. */
  close(): Promise<void>;
}
