// RFC 6121 §3: subscription stanzas a user sends (sender's side) and receives (recipient's side), per Appendix A.
import type { FeatureContext } from '@starling/core';
import type { RosterItem } from '@starling/ports';
import { attr, type Element, Jid, StanzaError, xml } from '@starling/xmpp';
import { pushRosterItem } from '../rfc6121-roster/push.ts';
import { withAttrs } from './presence-stanza.ts';
import {
  inboundTransition,
  outboundTransition,
  sharesPresence,
  type SubscriptionState,
  type SubscriptionType,
} from './subscription-state.ts';
import { deliverToAvailable, sendCurrentPresence, sendUnavailable } from './user-presence.ts';

interface Current {
  readonly item: RosterItem | undefined;
  readonly state: SubscriptionState;
}

async function current(ctx: FeatureContext, user: Jid, contact: Jid): Promise<Current> {
  const [item, pendingIn] = await Promise.all([
    ctx.store.rosters.getItem(user.local, contact.toString()),
    ctx.store.subscriptionRequests.has(user.local, contact.toString()),
  ]);
  return {
    item,
    state: { subscription: item?.subscription ?? 'none', pendingOut: item?.askOut ?? false, pendingIn },
  };
}

async function saveItem(ctx: FeatureContext, user: Jid, item: RosterItem, isNew: boolean): Promise<void> {
  if (isNew) {
    const roster = await ctx.store.rosters.get(user.local);
    if (roster.items.length >= ctx.config.limits.rosterItems) {
      throw new StanzaError('not-allowed', 'the roster is full');
    }
  }
  const version = await ctx.store.rosters.setItem(user.local, item);
  await pushRosterItem(ctx, user.local, item, version);
}

// Pending in lives apart from the roster: a request no longer pending is removed here, while a new one
// is stored by the caller, which has the stanza. The item is pushed only when it changed.
async function apply(
  ctx: FeatureContext,
  user: Jid,
  contact: Jid,
  now: Current,
  next: SubscriptionState,
  approved?: boolean,
): Promise<void> {
  if (now.state.pendingIn && !next.pendingIn) {
    await ctx.store.subscriptionRequests.remove(user.local, contact.toString());
  }
  const base: RosterItem = now.item ?? {
    jid: contact.toString(),
    subscription: 'none',
    askOut: false,
    approved: false,
    groups: [],
  };
  const item: RosterItem = {
    ...base,
    subscription: next.subscription,
    askOut: next.pendingOut,
    approved: approved ?? base.approved,
  };
  const changed =
    item.subscription !== base.subscription || item.askOut !== base.askOut || item.approved !== base.approved;
  if (changed) await saveItem(ctx, user, item, now.item === undefined);
}

function contactOf(stanza: Element): Jid {
  const to = attr(stanza, 'to');
  if (to === undefined) throw new StanzaError('bad-request', 'a subscription stanza needs a "to"');
  const jid = Jid.tryParse(to);
  if (jid === undefined) throw new StanzaError('jid-malformed');
  return jid.bare();
}

/** §3.1.2, §3.2.2, §3.3.2, §3.4 and A.2: a subscription stanza `user` sent. */
export async function outboundSubscription(
  ctx: FeatureContext,
  user: Jid,
  stanza: Element,
  type: SubscriptionType,
): Promise<void> {
  const self = user.bare();
  const contact = contactOf(stanza);
  if (contact.equals(self) || (contact.local === '' && ctx.isLocal(contact))) {
    // Neither the account itself nor its server has a subscription state to change.
    if (type === 'subscribe') throw new StanzaError('bad-request', 'cannot subscribe to this address');
    return;
  }
  const now = await current(ctx, self, contact);
  const { state: next, pass } = outboundTransition(type, now.state);
  const out = withAttrs(stanza, { from: self.toString(), to: contact.toString() });

  switch (type) {
    case 'subscribe':
    case 'unsubscribe':
      await apply(ctx, self, contact, now, next);
      await ctx.routing.route(out);
      return;
    case 'subscribed':
      if (pass) {
        await apply(ctx, self, contact, now, next, false);
        await ctx.routing.route(out);
        await sendCurrentPresence(ctx, self, contact.toString());
      } else if (!sharesPresence(now.state.subscription)) {
        // §3.4: approving before being asked is a pre-approval, remembered and not routed.
        await apply(ctx, self, contact, now, next, true);
      }
      return;
    case 'unsubscribed':
      if (pass) {
        await apply(ctx, self, contact, now, next);
        await ctx.routing.route(out);
        if (sharesPresence(now.state.subscription)) await sendUnavailable(ctx, self, contact.toString());
        return;
      }
      // Withdrawing a pre-approval (§3.4) is the only change left.
      await apply(ctx, self, contact, now, next, false);
      return;
  }
}

/** §3.1.3, §3.1.6, §3.2.3, §3.3.3 and A.3: a subscription stanza for a local account, after the sender's side. */
export async function inboundSubscription(
  ctx: FeatureContext,
  stanza: Element,
  type: SubscriptionType,
): Promise<void> {
  const from = Jid.tryParse(attr(stanza, 'from') ?? '');
  const to = Jid.tryParse(attr(stanza, 'to') ?? '');
  if (from === undefined || to === undefined || to.local === '' || !ctx.isLocal(to)) {
    ctx.log.debug({ stanza: stanza.toString() }, 'subscription stanza not for a local account');
    return;
  }
  const contact = from.bare();
  const user = to.bare();
  if (contact.equals(user)) return;
  const now = await current(ctx, user, contact);
  const { state: next, pass } = inboundTransition(type, now.state);
  const delivered = withAttrs(stanza, { from: contact.toString(), to: user.toString() });

  if (type === 'subscribe') {
    const approved = sharesPresence(now.state.subscription);
    const preApproved = !approved && !now.state.pendingIn && now.item?.approved === true;
    if (approved || preApproved) {
      if (preApproved) {
        const granted = outboundTransition('subscribed', { ...now.state, pendingIn: true }).state;
        await apply(ctx, user, contact, now, granted, false);
      }
      await ctx.routing.route(
        xml('presence', { from: user.toString(), to: contact.toString(), type: 'subscribed' }),
      );
      await sendCurrentPresence(ctx, user, contact.toString());
      return;
    }
    if (!pass) return;
    // §3.1.3: kept until the user decides, and shown again at each login until then.
    await ctx.store.subscriptionRequests.add(user.local, contact.toString(), delivered.toString());
    await deliverToAvailable(ctx, user.toString(), delivered);
    return;
  }

  if (!pass) return;
  await apply(ctx, user, contact, now, next);
  await deliverToAvailable(ctx, user.toString(), delivered);
  if (type === 'unsubscribe' && sharesPresence(now.state.subscription)) {
    await sendUnavailable(ctx, user, contact.toString());
  }
}
