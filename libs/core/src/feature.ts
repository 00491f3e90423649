// The feature seam: a feature (one RFC section or XEP) declares what it plugs in and where it runs.
import type { Element, Jid } from '@starling/xmpp';
import type { DeliveryTarget, SessionRecord, SessionRegistry, StanzaBus, Store } from '@starling/ports';
import type { Config } from './config.ts';
import type { Hooks } from './hooks.ts';
import type { IqTable } from './iq-table.ts';
import type { Logger } from './log.ts';

export type Role = 'edge' | 'router' | 'presence' | 'archive';

export interface SpecRef {
  readonly rfc?: number;
  readonly xep?: number;
  /** Section or version, as shown in the compliance table. */
  readonly section?: string;
  readonly title: string;
}

export interface DiscoIdentity {
  readonly category: string;
  readonly type: string;
  readonly name?: string;
}

/** What a feature adds to service discovery (XEP-0030) and so to the server's caps (XEP-0115). */
export interface DiscoDeclaration {
  /** Features of the server's domain. */
  readonly features?: readonly string[];
  readonly identities?: readonly DiscoIdentity[];
  /** Features of every account's bare JID. */
  readonly accountFeatures?: readonly string[];
}

/** How router and presence features send stanzas; the host implements RFC 6121 §8 delivery. */
export interface Routing {
  /**
   * Sends a stanza the server originated, or one it emits on behalf of a local entity, to its `to`
   * by the RFC 6121 §8 rules: local bare/full JIDs, offline storage, errors for unknown accounts.
   * Presence subscription stanzas go through the presence role so the recipient's state machine runs.
   */
  route(stanza: Element): Promise<void>;
  /**
   * Routes again a stanza a stream-managed session never acknowledged (XEP-0198 §5): the same rules, but
   * without the inbound processing (archiving, blocking) it had the first time.
   */
  reroute(stanza: Element): Promise<void>;
  /** Writes a stanza to one session; false if it is gone. */
  deliver(session: DeliveryTarget, stanza: Element): Promise<boolean>;
  /** Ends a session with a stream error. */
  close(session: SessionRecord, condition: 'conflict' | 'not-authorized' | 'policy-violation'): Promise<void>;
}

export interface FeatureContext {
  readonly role: Role;
  readonly config: Config;
  readonly store: Store;
  readonly registry: SessionRegistry;
  /** For features that hand work to another role over its topic (see topics.ts). */
  readonly bus: StanzaBus;
  readonly hooks: Hooks;
  readonly iq: IqTable;
  readonly routing: Routing;
  readonly log: Logger;
  /** The features enabled in this deployment, of every role (disco and caps are computed from them). */
  readonly features: readonly Feature[];
  /** Whether archive writes go straight to `store.archive` (see `RoleDeps.archiveInProcess`). */
  readonly archiveInProcess: boolean;
  /** True if `jid` belongs to this server's domain. */
  isLocal(jid: Jid): boolean;
}

export interface Feature {
  readonly id: string;
  readonly spec: SpecRef;
  readonly roles: readonly Role[];
  /** Whether the feature runs with this configuration; default always. */
  readonly enabled?: (config: Config) => boolean;
  readonly disco?: DiscoDeclaration;
  /** Called once per hosting role, at start. */
  setup?(context: FeatureContext): void | Promise<void>;
}

export function defineFeature(feature: Feature): Feature {
  return feature;
}
