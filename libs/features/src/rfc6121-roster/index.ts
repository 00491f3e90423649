// RFC 6121 §2 with XEP-0237 versioning: roster get, set and remove, each followed by roster pushes.
import { defineFeature, type FeatureContext, type IqRequest } from '@starling/core';
import type { RosterItem } from '@starling/ports';
import { attr, Jid, NS_ROSTER, StanzaError, xml, type Element } from '@starling/xmpp';
import { pushRosterItem, rosterItemElement } from './push.ts';

/** Longest handle or group name, in characters (RFC 6121 §2.3.3 leaves the limit to the server). */
const MAX_NAME_LENGTH = 1024;

function ownRosterOnly(request: IqRequest): void {
  if (!request.to.equals(request.from.bare())) {
    throw new StanzaError('forbidden', 'a roster belongs to its own account only');
  }
}

async function markInterested(ctx: FeatureContext, from: Jid): Promise<void> {
  const session = await ctx.registry.get(from.toString());
  if (session && !session.interested) {
    await ctx.registry.update(session.jid, session.sessionId, { interested: true });
  }
}

async function rosterGet(ctx: FeatureContext, request: IqRequest): Promise<Element | undefined> {
  ownRosterOnly(request);
  await markInterested(ctx, request.from);
  const roster = await ctx.store.rosters.get(request.from.local);
  const clientVer = attr(request.payload, 'ver');
  const ver = String(roster.version);
  // XEP-0237 §4: an up-to-date client gets an empty result instead of the whole roster.
  if (clientVer === ver) return undefined;
  return xml(
    'query',
    { xmlns: NS_ROSTER, ver: clientVer === undefined ? undefined : ver },
    ...roster.items.map(rosterItemElement),
  );
}

function contactOf(item: Element, from: Jid): Jid {
  const value = attr(item, 'jid');
  const contact = value === undefined ? undefined : Jid.tryParse(value);
  if (contact === undefined || !contact.isBare) {
    throw new StanzaError('jid-malformed', 'a roster item needs a valid bare JID');
  }
  if (contact.equals(from.bare())) throw new StanzaError('not-allowed', 'the roster cannot hold its owner');
  return contact;
}

/** RFC 6121 §2.3.3: the handle and groups of the item, checked. */
function namesOf(item: Element): { name: string | undefined; groups: string[] } {
  const name = attr(item, 'name');
  if (name !== undefined && name.length > MAX_NAME_LENGTH) {
    throw new StanzaError('not-acceptable', 'the name is too long');
  }
  const groups: string[] = [];
  for (const group of item.getChildren('group')) {
    const text = group.getText();
    if (text === '') throw new StanzaError('not-acceptable', 'a group name cannot be empty');
    if (text.length > MAX_NAME_LENGTH) throw new StanzaError('not-acceptable', 'a group name is too long');
    if (groups.includes(text)) throw new StanzaError('bad-request', 'duplicate group');
    groups.push(text);
  }
  return { name: name === '' ? undefined : name, groups };
}

/** RFC 6121 §2.5.2: cancel both directions of the subscription, then drop the item. */
async function removeItem(ctx: FeatureContext, from: Jid, contact: Jid): Promise<void> {
  const username = from.local;
  const contactJid = contact.toString();
  const existing = await ctx.store.rosters.getItem(username, contactJid);
  if (!existing) throw new StanzaError('item-not-found');
  const ownBare = from.bare().toString();
  const sub = existing.subscription;
  const pendingIn = await ctx.store.subscriptionRequests.remove(username, contactJid);
  const version = await ctx.store.rosters.removeItem(username, contactJid);
  if (sub === 'to' || sub === 'both' || existing.askOut) {
    await ctx.routing.route(xml('presence', { type: 'unsubscribe', from: ownBare, to: contactJid }));
  }
  if (sub === 'from' || sub === 'both') {
    // The contact loses the subscription, so it learns that every resource of the user is gone.
    const sessions = await ctx.registry.resources(ownBare);
    for (const session of sessions.filter((s) => s.available)) {
      await ctx.routing.route(xml('presence', { type: 'unavailable', from: session.jid, to: contactJid }));
    }
  }
  if (sub === 'from' || sub === 'both' || pendingIn) {
    await ctx.routing.route(xml('presence', { type: 'unsubscribed', from: ownBare, to: contactJid }));
  }
  if (version !== undefined)
    await pushRosterItem(ctx, username, { jid: contactJid, subscription: 'remove' }, version);
}

async function rosterSet(ctx: FeatureContext, request: IqRequest): Promise<undefined> {
  ownRosterOnly(request);
  const children = request.payload.getChildElements();
  const itemEl = children[0];
  if (children.length !== 1 || itemEl?.name !== 'item') {
    throw new StanzaError('bad-request', 'a roster set carries exactly one item');
  }
  const { from } = request;
  const contact = contactOf(itemEl, from);
  // §2.1.2.5: subscription and ask are the server's to set; only "remove" means something from a client.
  if (attr(itemEl, 'subscription') === 'remove') {
    await removeItem(ctx, from, contact);
    return undefined;
  }
  const { name, groups } = namesOf(itemEl);
  const username = from.local;
  const existing = await ctx.store.rosters.getItem(username, contact.toString());
  if (!existing) {
    const roster = await ctx.store.rosters.get(username);
    if (roster.items.length >= ctx.config.limits.rosterItems) {
      throw new StanzaError('not-allowed', 'the roster is full');
    }
  }
  const item: RosterItem = {
    jid: contact.toString(),
    ...(name === undefined ? {} : { name }),
    subscription: existing?.subscription ?? 'none',
    askOut: existing?.askOut ?? false,
    approved: existing?.approved ?? false,
    groups,
  };
  const version = await ctx.store.rosters.setItem(username, item);
  await pushRosterItem(ctx, username, item, version);
  return undefined;
}

export default defineFeature({
  id: 'rfc6121-roster',
  spec: { rfc: 6121, section: '2', title: 'Managing the Roster' },
  roles: ['router'],
  setup(ctx) {
    ctx.iq.onGet(NS_ROSTER, 'query', (request) => rosterGet(ctx, request), { targets: ['account'] });
    ctx.iq.onSet(NS_ROSTER, 'query', (request) => rosterSet(ctx, request), { targets: ['account'] });
  },
});

/** XEP-0237: the `ver` handling of roster get above; declared for the specification table. */
export const rosterVersioning = defineFeature({
  id: 'xep-0237-roster-versioning',
  spec: { xep: 237, title: 'Roster Versioning' },
  roles: ['router'],
});
