// RFC 6120 §6 and RFC 4422: what a server-side SASL mechanism is, what it answers, and how it fails.
import type { AccountStore } from '@starling/ports';

/** The mechanisms Starling implements, strongest first. */
export const SASL_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'] as const;

export type SaslMechanismName = (typeof SASL_MECHANISMS)[number];

/** RFC 6120 §6.5 failure conditions. */
export type SaslFailureCondition =
  | 'aborted'
  | 'account-disabled'
  | 'credentials-expired'
  | 'encryption-required'
  | 'incorrect-encoding'
  | 'invalid-authzid'
  | 'invalid-mechanism'
  | 'malformed-request'
  | 'mechanism-too-weak'
  | 'not-authorized'
  | 'temporary-auth-failure';

/** What the server answers to one client message. */
export type SaslStep =
  | { readonly kind: 'challenge'; readonly data: Buffer }
  /** `username` is the prepared localpart; `data` is RFC 6120 §6.3.10 additional data with success. */
  | { readonly kind: 'success'; readonly username: string; readonly data?: Buffer }
  | { readonly kind: 'failure'; readonly condition: SaslFailureCondition; readonly text?: string };

/** One authentication exchange on one stream; a new one is made for every `<auth/>`. */
export interface SaslExchange {
  readonly mechanism: SaslMechanismName;
  /**
   * Handles the next client message. The first call gets the initial response, or undefined when the
   * client sent none (RFC 6120 §6.4.2). Never rejects: every problem is a failure step.
   */
  step(data: Buffer | undefined): Promise<SaslStep>;
}

export interface SaslServerOptions {
  /** Credential lookups; a rejection becomes `temporary-auth-failure`. */
  readonly accounts: Pick<AccountStore, 'get'>;
  /** The served domain: authzids must be the user's bare JID on it. */
  readonly domain: string;
  /** Iteration count shown for unknown users, so they look like real ones (config.auth.scramIterations). */
  readonly iterations: number;
  /** Secret that derives the stable fake salt of each unknown username; keep it per deployment. */
  readonly fakeSaltKey: Buffer;
  /** The server's part of the SCRAM nonce; random by default, fixed in tests. */
  readonly nonce?: () => string;
}
