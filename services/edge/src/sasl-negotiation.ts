// RFC 6120 §6.4: SASL negotiation on one stream: <auth/>, <challenge/>, <response/>, <abort/>, throttled per address.
import { setTimeout as sleep } from 'node:timers/promises';
import { authentications } from '@starling/core';
import { NS_SASL, xml, type Element } from '@starling/xmpp';
import {
  createSaslExchange,
  decodeSaslPayload,
  encodeSaslPayload,
  isSaslMechanism,
  SASL_MECHANISMS,
  type SaslExchange,
  type SaslFailureCondition,
  type SaslServerOptions,
  type SaslStep,
} from '@starling/features';
import type { LoginThrottle } from './login-throttle.ts';

/** Failed attempts on one stream before it is closed with policy-violation. */
export const MAX_FAILURES_PER_STREAM = 5;

export type SaslOutcome =
  | { readonly kind: 'pending' }
  /** Not yet sent: the caller sends `success` and restarts the stream in one step, before reading on. */
  | { readonly kind: 'success'; readonly username: string; readonly success: Element }
  /** The stream used up its attempts; the caller closes it. */
  | { readonly kind: 'exhausted' };

/** What the stream allows at the moment of `<auth/>`. */
export interface SaslPolicy {
  /** Mechanisms offered on this stream, in the order offered. */
  readonly offered: readonly string[];
  /** Mechanisms the configuration enables at all. */
  readonly enabled: readonly string[];
  readonly secure: boolean;
  /** TLS is mandatory and not negotiated yet (RFC 6120 §5.3.1). */
  readonly awaitingTls: boolean;
}

export interface SaslNegotiationOptions {
  readonly server: SaslServerOptions;
  readonly throttle: LoginThrottle;
  readonly remoteAddress: string;
  readonly send: (el: Element) => void;
}

function failureElement(condition: SaslFailureCondition, text?: string): Element {
  return xml(
    'failure',
    { xmlns: NS_SASL },
    xml(condition),
    text === undefined ? null : xml('text', { 'xml:lang': 'en' }, text),
  );
}

/** The stronger mechanisms come first in SASL_MECHANISMS; `name` is too weak if an enabled one precedes it. */
function tooWeak(name: string, enabled: readonly string[]): boolean {
  const rank = (SASL_MECHANISMS as readonly string[]).indexOf(name);
  return enabled.some((other) => (SASL_MECHANISMS as readonly string[]).indexOf(other) < rank);
}

/**
 * The SASL state of one stream: at most one exchange at a time, a few failures per stream, and the
 * per-address throttle consulted before and after every attempt.
 */
export class SaslNegotiation {
  private readonly options: SaslNegotiationOptions;
  private exchange: SaslExchange | undefined;
  private failures = 0;

  constructor(options: SaslNegotiationOptions) {
    this.options = options;
  }

  /** Handles one element in the SASL namespace. */
  async handle(el: Element, policy: SaslPolicy): Promise<SaslOutcome> {
    switch (el.name) {
      case 'auth':
        return this.onAuth(el, policy);
      case 'response':
        return this.onResponse(el);
      case 'abort':
        this.exchange = undefined;
        this.options.send(failureElement('aborted'));
        return { kind: 'pending' };
      default:
        return this.fail('malformed-request', 'Unknown SASL element');
    }
  }

  private async onAuth(el: Element, policy: SaslPolicy): Promise<SaslOutcome> {
    this.exchange = undefined;
    const blockedMs = this.options.throttle.blockedFor(this.options.remoteAddress);
    if (blockedMs > 0) {
      authentications.labels('blocked').inc();
      const seconds = Math.ceil(blockedMs / 1000);
      return this.fail('temporary-auth-failure', `Too many failed logins; try again in ${seconds} s`);
    }
    if (policy.awaitingTls) return this.fail('encryption-required', 'Negotiate TLS first');
    const name = el.attrs.mechanism as unknown;
    if (typeof name !== 'string' || !isSaslMechanism(name)) return this.fail('invalid-mechanism');
    if (!policy.offered.includes(name)) {
      if (name === 'PLAIN' && policy.enabled.includes(name) && !policy.secure) {
        return this.fail('encryption-required', 'PLAIN needs TLS');
      }
      return tooWeak(name, policy.enabled) ? this.fail('mechanism-too-weak') : this.fail('invalid-mechanism');
    }
    const data = decodeSaslPayload(el.getText());
    if (data === null) return this.fail('incorrect-encoding');
    this.exchange = createSaslExchange(name, this.options.server);
    return this.answer(await this.exchange.step(data));
  }

  private async onResponse(el: Element): Promise<SaslOutcome> {
    const exchange = this.exchange;
    if (exchange === undefined) return this.fail('malformed-request', 'No authentication in progress');
    const data = decodeSaslPayload(el.getText());
    if (data === null) {
      this.exchange = undefined;
      return this.fail('incorrect-encoding');
    }
    return this.answer(await exchange.step(data ?? Buffer.alloc(0)));
  }

  private async answer(step: SaslStep): Promise<SaslOutcome> {
    switch (step.kind) {
      case 'challenge':
        this.options.send(xml('challenge', { xmlns: NS_SASL }, encodeSaslPayload(step.data)));
        return { kind: 'pending' };
      case 'success':
        this.exchange = undefined;
        authentications.labels('success').inc();
        this.options.throttle.recordSuccess(this.options.remoteAddress);
        return {
          kind: 'success',
          username: step.username,
          success: xml(
            'success',
            { xmlns: NS_SASL },
            step.data === undefined ? null : encodeSaslPayload(step.data),
          ),
        };
      case 'failure':
        this.exchange = undefined;
        authentications.labels('failure').inc();
        if (step.condition === 'not-authorized') {
          const delayMs = this.options.throttle.recordFailure(this.options.remoteAddress);
          if (delayMs > 0) await sleep(delayMs);
        }
        return this.fail(step.condition, step.text);
    }
  }

  private fail(condition: SaslFailureCondition, text?: string): SaslOutcome {
    this.exchange = undefined;
    this.options.send(failureElement(condition, text));
    this.failures += 1;
    return this.failures >= MAX_FAILURES_PER_STREAM ? { kind: 'exhausted' } : { kind: 'pending' };
  }
}
