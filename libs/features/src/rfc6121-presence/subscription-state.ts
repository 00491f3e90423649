// RFC 6121 Appendix A: the nine subscription states and what each subscription stanza does to them.
import type { Subscription } from '@starling/ports';

export type SubscriptionType = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

const SUBSCRIPTION_TYPES: readonly SubscriptionType[] = [
  'subscribe',
  'subscribed',
  'unsubscribe',
  'unsubscribed',
];

export function isSubscriptionType(type: string): type is SubscriptionType {
  return (SUBSCRIPTION_TYPES as readonly string[]).includes(type);
}

/**
 * One state of Appendix A.1 as seen from the user's side: the roster item's subscription, pending out
 * (the item's askOut) and pending in (a stored request from the contact).
 */
export interface SubscriptionState {
  readonly subscription: Subscription;
  readonly pendingOut: boolean;
  readonly pendingIn: boolean;
}

/** A state change and whether the stanza travels on. */
export interface Transition {
  readonly state: SubscriptionState;
  /** Outbound (A.2): route the stanza to the contact. Inbound (A.3): deliver it to the user. */
  readonly pass: boolean;
}

function has(subscription: Subscription, direction: 'to' | 'from'): boolean {
  return subscription === direction || subscription === 'both';
}

/** `subscription` with `direction` added (`add`) or taken away. */
function withDirection(subscription: Subscription, direction: 'to' | 'from', add: boolean): Subscription {
  const to = direction === 'to' ? add : has(subscription, 'to');
  const from = direction === 'from' ? add : has(subscription, 'from');
  if (to && from) return 'both';
  if (to) return 'to';
  if (from) return 'from';
  return 'none';
}

/** The user lost (or never had) the contact's subscription and its pending request: A.2.4, A.3.2. */
function dropFrom(state: SubscriptionState): Transition {
  if (!state.pendingIn && !has(state.subscription, 'from')) return { state, pass: false };
  return {
    state: { ...state, subscription: withDirection(state.subscription, 'from', false), pendingIn: false },
    pass: true,
  };
}

/** The user lost (or never had) a subscription to the contact and its pending request: A.2.2, A.3.4. */
function dropTo(state: SubscriptionState): Transition {
  if (!state.pendingOut && !has(state.subscription, 'to')) return { state, pass: false };
  return {
    state: { ...state, subscription: withDirection(state.subscription, 'to', false), pendingOut: false },
    pass: true,
  };
}

/**
 * A.2: a subscription stanza the user sends to the contact. Pre-approval (§3.4, outbound "subscribed"
 * with nothing pending in) is not a state of the table; callers handle it where `pass` is false.
 */
export function outboundTransition(type: SubscriptionType, state: SubscriptionState): Transition {
  switch (type) {
    case 'subscribe':
      // Every row routes: the contact's server decides again, and auto-replies if already approved.
      return has(state.subscription, 'to')
        ? { state, pass: true }
        : { state: { ...state, pendingOut: true }, pass: true };
    case 'unsubscribe':
      return { state: dropTo(state).state, pass: true };
    case 'subscribed':
      if (!state.pendingIn) return { state, pass: false };
      return {
        state: { ...state, subscription: withDirection(state.subscription, 'from', true), pendingIn: false },
        pass: true,
      };
    case 'unsubscribed':
      return dropFrom(state);
  }
}

/**
 * A.3: a subscription stanza the contact sent to the user. An inbound "subscribe" in a state with
 * "from" does not pass: the caller auto-replies "subscribed" (§3.1.3).
 */
export function inboundTransition(type: SubscriptionType, state: SubscriptionState): Transition {
  switch (type) {
    case 'subscribe':
      if (state.pendingIn || has(state.subscription, 'from')) return { state, pass: false };
      return { state: { ...state, pendingIn: true }, pass: true };
    case 'subscribed':
      if (!state.pendingOut) return { state, pass: false };
      return {
        state: { ...state, subscription: withDirection(state.subscription, 'to', true), pendingOut: false },
        pass: true,
      };
    case 'unsubscribe':
      return dropFrom(state);
    case 'unsubscribed':
      return dropTo(state);
  }
}

/** Whether the user shares presence with the contact ("from" or "both"). */
export function sharesPresence(subscription: Subscription | undefined): boolean {
  return subscription !== undefined && has(subscription, 'from');
}

/** Whether the user receives the contact's presence ("to" or "both"). */
export function receivesPresence(subscription: Subscription | undefined): boolean {
  return subscription !== undefined && has(subscription, 'to');
}
