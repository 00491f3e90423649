// RFC 6121 §4.2-4.6: presence broadcast, probes at login, directed presence, and unavailable when a session goes.
import type { FeatureContext } from '@starling/core';
import type { Roster, SessionRecord } from '@starling/ports';
import { attr, type Element, Jid, parseTrusted, StanzaError, xml } from '@starling/xmpp';
import { checkAvailable, statusText, withAttrs } from './presence-stanza.ts';
import { receivesPresence, sharesPresence } from './subscription-state.ts';
import { answerProbe, availableResources, currentPresence } from './user-presence.ts';

// Most entities one session may hold directed presence for (RFC 6121 §4.6): the list lives in every record.
const DIRECTED_LIMIT = 1000;

// To the contacts and to the user's other available resources (`known`, looked up when not given);
// resolves with those resources, which the caller may need again.
async function broadcast(
  ctx: FeatureContext,
  session: SessionRecord,
  roster: Roster,
  presence: Element,
  known?: SessionRecord[],
): Promise<SessionRecord[]> {
  const user = Jid.parse(session.jid).bare();
  const others = known ?? (await availableResources(ctx, user.toString(), session.sessionId));
  await Promise.all([
    ...roster.items
      .filter((item) => sharesPresence(item.subscription))
      .map((item) => ctx.routing.route(withAttrs(presence, { to: item.jid }))),
    ...others.map((other) => ctx.routing.deliver(other, withAttrs(presence, { to: other.jid }))),
  ]);
  return others;
}

/**
 * §4.2 and §4.4: an available presence with no "to". The first of a session is initial presence: it
 * also probes the user's contacts (§4.3; local ones are answered here, there is no s2s yet), shows the
 * new session its siblings, runs the initial-presence hook and shows pending subscription requests.
 */
export async function availablePresence(
  ctx: FeatureContext,
  session: SessionRecord,
  stanza: Element,
): Promise<void> {
  const priority = checkAvailable(stanza);
  const user = Jid.parse(session.jid).bare();
  const presence = withAttrs(stanza, { from: session.jid, to: undefined });
  const updated = await ctx.registry.update(session.jid, session.sessionId, {
    available: true,
    priority,
    presence: presence.toString(),
  });
  if (updated === undefined) return;
  const roster = await ctx.store.rosters.get(user.local);
  const siblings = await broadcast(ctx, session, roster, presence);
  // §4.2.2 and §4.4.2: the broadcast includes the resource that sent it.
  await ctx.routing.deliver(updated, withAttrs(presence, { to: session.jid }));
  if (session.available) return;

  await Promise.all(
    roster.items
      .filter((item) => receivesPresence(item.subscription))
      .map(async (item) => {
        const contact = Jid.tryParse(item.jid);
        if (contact === undefined || contact.local === '' || !ctx.isLocal(contact)) return;
        await answerProbe(ctx, contact, session.jid);
      }),
  );
  await Promise.all(
    siblings.map((sibling) =>
      ctx.routing.deliver(updated, withAttrs(currentPresence(sibling), { to: session.jid })),
    ),
  );
  await ctx.hooks.run('initial-presence', { session: updated, stanza: presence });
  for (const request of await ctx.store.subscriptionRequests.list(user.local)) {
    await ctx.routing.deliver(updated, parseTrusted(request.stanza));
  }
}

// §4.5.2. The last logout (XEP-0012) is recorded only once the user has no available resource left, and
// before anyone is told: a contact that sees the unavailable presence may ask for it at once.
async function announceUnavailable(
  ctx: FeatureContext,
  session: SessionRecord,
  presence: Element,
  status: string,
  toSubscribers: boolean,
): Promise<void> {
  const user = Jid.parse(session.jid).bare();
  const others = await availableResources(ctx, user.toString(), session.sessionId);
  if (others.length === 0) await ctx.store.lastActivity.set(user.local, { at: Date.now(), status });
  if (toSubscribers) {
    await broadcast(ctx, session, await ctx.store.rosters.get(user.local), presence, others);
  }
  await Promise.all(
    (session.directed ?? []).map((jid) => ctx.routing.route(withAttrs(presence, { to: jid }))),
  );
}

/** §4.5: an unavailable presence with no "to". */
export async function unavailablePresence(
  ctx: FeatureContext,
  session: SessionRecord,
  stanza: Element,
): Promise<void> {
  const presence = withAttrs(stanza, { from: session.jid, to: undefined });
  const updated = await ctx.registry.update(session.jid, session.sessionId, {
    available: false,
    presence: null,
    directed: [],
  });
  if (updated === undefined) return;
  await announceUnavailable(ctx, session, presence, statusText(stanza), session.available);
}

/**
 * §4.6: presence with a "to" (available, unavailable, probe or error) is routed from the session's full
 * JID. Available presence to an entity that is not a subscriber is remembered so that it learns when
 * the session goes; unavailable or an error forgets it.
 */
export async function directedPresence(
  ctx: FeatureContext,
  sender: Jid,
  session: SessionRecord | undefined,
  stanza: Element,
  type: string,
): Promise<void> {
  const target = Jid.tryParse(attr(stanza, 'to') ?? '');
  if (target === undefined) throw new StanzaError('jid-malformed');
  const out = withAttrs(stanza, { from: sender.toString(), to: target.toString() });
  const user = sender.bare();
  if (session === undefined || type === 'probe' || target.bare().equals(user)) {
    await ctx.routing.route(out);
    return;
  }
  const directed = session.directed ?? [];
  const to = target.toString();
  let next: string[] | undefined;
  if (type === 'available' && !directed.includes(to)) {
    const item = await ctx.store.rosters.getItem(user.local, target.bare().toString());
    if (!sharesPresence(item?.subscription)) {
      if (directed.length >= DIRECTED_LIMIT) {
        throw new StanzaError('resource-constraint', 'too many entities hold directed presence');
      }
      next = [...directed, to];
    }
  } else if (type !== 'available' && directed.includes(to)) {
    next = directed.filter((jid) => jid !== to);
  }
  // Recorded before it is sent: once the entity has it, a session end must find it in the list.
  if (next !== undefined) await ctx.registry.update(session.jid, session.sessionId, { directed: next });
  await ctx.routing.route(out);
}

/** The end of a session (closed, failed, replaced or swept): §4.5.2 on its behalf, then the session-ended hook. */
export async function endSession(ctx: FeatureContext, record: SessionRecord): Promise<void> {
  let status = '';
  if (!record.available) {
    // If it said goodbye with an unavailable presence, the last activity written then holds the status.
    const last = await ctx.store.lastActivity.get(Jid.parse(record.jid).local);
    if (last !== undefined && last.at >= record.boundAt) status = last.status;
  }
  // A session that replaced this one on the same full JID and is available keeps that JID online.
  const successor = record.available ? await ctx.registry.get(record.jid) : undefined;
  const replaced = successor !== undefined && successor.sessionId !== record.sessionId && successor.available;
  const presence = xml('presence', { from: record.jid, type: 'unavailable' });
  await announceUnavailable(ctx, record, presence, status, record.available && !replaced);
  await ctx.hooks.run('session-ended', { session: record });
}
