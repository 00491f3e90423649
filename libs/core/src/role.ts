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
  /**
   * Whether the router hands archive writes straight to `store.archive` instead of publishing them on the
   * archive topic: only where the archive role shares the process and the store, as in the embedded
   * shape. MAM requests still go over the topic, and reach the store after every write handed to it
   * before them (the store takes calls in order). Default off.
   */
  readonly archiveInProcess?: boolean;
}

export interface RoleHandle {
  /** Stops taking work, finishes what is in flight, releases sockets and subscriptions. */
  close(): Promise<void>;
}
