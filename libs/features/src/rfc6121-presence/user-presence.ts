// RFC 6121 §4: what a user's available resources show others (current presence, unavailable, probe answers).
import type { FeatureContext } from '@starling/core';
import type { SessionRecord } from '@starling/ports';
import { bareOf, type Element, type Jid, parseTrusted, xml } from '@starling/xmpp';
import { unavailableSince, withAttrs } from './presence-stanza.ts';
import { sharesPresence } from './subscription-state.ts';

/** The available resources (RFC 6121 §1.4) of `bare`, leaving out the session `except`. */
export async function availableResources(
  ctx: FeatureContext,
  bare: string,
  except?: string,
): Promise<SessionRecord[]> {
  const sessions = await ctx.registry.resources(bare);
  return sessions.filter((session) => session.available && session.sessionId !== except);
}

/** The last presence a resource broadcast, from its full JID. */
export function currentPresence(session: SessionRecord): Element {
  const presence = session.presence !== undefined ? parseTrusted(session.presence) : xml('presence');
  presence.attrs.from = session.jid;
  return presence;
}

/** Routes the current presence of each available resource of `user` to `to`; resolves how many went. */
export async function sendCurrentPresence(ctx: FeatureContext, user: Jid, to: string): Promise<number> {
  const resources = await availableResources(ctx, user.toString());
  await Promise.all(
    resources.map((session) => ctx.routing.route(withAttrs(currentPresence(session), { to }))),
  );
  return resources.length;
}

/** Routes unavailable presence from each available resource of `user` to `to` (§3.2.2, §3.3.3). */
export async function sendUnavailable(ctx: FeatureContext, user: Jid, to: string): Promise<void> {
  const resources = await availableResources(ctx, user.toString());
  await Promise.all(
    resources.map((session) =>
      ctx.routing.route(xml('presence', { from: session.jid, to, type: 'unavailable' })),
    ),
  );
}

/**
 * §4.3.2: answers a probe from `prober` for the local account `user` (a bare JID), only if the prober
 * is allowed to see it: each available resource's presence, or unavailable dated by the last logout.
 */
export async function answerProbe(ctx: FeatureContext, user: Jid, prober: string): Promise<void> {
  const item = await ctx.store.rosters.getItem(user.local, bareOf(prober));
  if (!sharesPresence(item?.subscription)) return;
  if ((await sendCurrentPresence(ctx, user, prober)) > 0) return;
  const last = await ctx.store.lastActivity.get(user.local);
  await ctx.routing.route(unavailableSince(user.toString(), prober, ctx.config.domain, last));
}

/**
 * Writes `stanza` to every available resource of `bare`. For subscription stanzas on the recipient's
 * side: routing ran the inbound hooks before it handed them over, and routing them again would loop.
 */
export async function deliverToAvailable(ctx: FeatureContext, bare: string, stanza: Element): Promise<void> {
  const resources = await availableResources(ctx, bare);
  await Promise.all(resources.map((session) => ctx.routing.deliver(session, stanza)));
}
