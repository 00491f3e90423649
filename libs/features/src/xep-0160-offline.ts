// XEP-0160: Best Practices for Handling Offline Messages, with XEP-0203 delay stamps. Stores, then flushes.
import {
  defineFeature,
  encodeEnvelope,
  newEnvelopeId,
  TOPIC_PRESENCE,
  type FeatureContext,
  type OfflineStoredEnvelope,
} from '@starling/core';
import type { SessionRecord } from '@starling/ports';
import {
  errorReply,
  NS_CHATSTATES,
  NS_DELAY,
  NS_MSGOFFLINE,
  parseTrusted,
  stanzaType,
  xml,
  type Element,
  type Jid,
} from '@starling/xmpp';
import { highestPriority } from './resources.ts';

/** XEP-0085 §5.5: a notification without content is never stored, nor bounced as undeliverable. */
function isChatStateOnly(stanza: Element): boolean {
  const children = stanza.getChildElements();
  return children.length > 0 && children.every((child) => child.getNS() === NS_CHATSTATES);
}

async function store(ctx: FeatureContext, stanza: Element, to: Jid): Promise<'handled' | undefined> {
  const type = stanzaType(stanza);
  // §3: chat and normal messages wait for the user; headline, groupchat and error ones are not kept.
  if (type !== 'chat' && type !== 'normal') return undefined;
  if (stanza.getChild('body') === undefined) return isChatStateOnly(stanza) ? 'handled' : undefined;
  const now = Date.now();
  const stamped = parseTrusted(stanza.toString());
  stamped.cnode(
    xml('delay', { xmlns: NS_DELAY, from: ctx.config.domain, stamp: new Date(now).toISOString() }),
  );
  const stored = await ctx.store.offline.push(
    to.local,
    stamped.toString(),
    now,
    ctx.config.limits.offlineMessages,
  );
  // A full queue bounces the message like an unavailable recipient (RFC 6121 §8.5.2.2.1).
  if (!stored) await ctx.routing.route(errorReply(stanza, 'service-unavailable'));
  else await tellIfOnline(ctx, to.bare().toString(), now);
  return 'handled';
}

/**
 * A session that became available after routing found none may have had its stored messages handed over
 * before this one was stored: the presence role, which handles the owner's initial presence on the same
 * key, hands them over again after it.
 */
async function tellIfOnline(ctx: FeatureContext, owner: string, ts: number): Promise<void> {
  const sessions = await ctx.registry.resources(owner);
  if (!sessions.some((session) => session.available && session.priority >= 0)) return;
  const envelope: OfflineStoredEnvelope = { t: 'offline-stored', id: newEnvelopeId(), ts, owner };
  await ctx.bus.publish(TOPIC_PRESENCE, owner, encodeEnvelope(envelope));
}

function priorityOf(presence: Element | undefined, session: SessionRecord): number {
  if (presence === undefined) return session.priority;
  const text = presence.getChildText('priority');
  const value = text === null ? Number.NaN : Number.parseInt(text, 10);
  return Number.isNaN(value) ? session.priority : value;
}

/** Delivers stored messages oldest first, and removes those that reached the session. */
async function flush(ctx: FeatureContext, session: SessionRecord, presence?: Element): Promise<void> {
  // §4: resources with a negative priority take no messages addressed to the bare JID.
  if (priorityOf(presence, session) < 0) return;
  const username = session.jid.slice(0, session.jid.indexOf('@'));
  const messages = await ctx.store.offline.list(username);
  const delivered: number[] = [];
  for (const message of messages) {
    if (!(await ctx.routing.deliver(session, parseTrusted(message.stanza)))) break;
    delivered.push(message.id);
  }
  if (delivered.length > 0) await ctx.store.offline.remove(username, delivered);
}

/**
 * Hands what is stored to an available resource with the highest non-negative priority, if any (the first
 * the registry lists, when several tie: stored messages go to one resource only).
 */
async function flushToOnline(ctx: FeatureContext, owner: Jid): Promise<void> {
  const [best] = highestPriority(await ctx.registry.resources(owner.toString()));
  if (best !== undefined) await flush(ctx, best);
}

export default defineFeature({
  id: 'xep-0160-offline',
  spec: { xep: 160, title: 'Best Practices for Handling Offline Messages' },
  roles: ['router', 'presence'],
  disco: { features: [NS_MSGOFFLINE] },
  setup(ctx) {
    if (ctx.role === 'router') {
      ctx.hooks.on('message-undeliverable', ({ stanza, to }) => store(ctx, stanza, to));
    } else {
      ctx.hooks.on('initial-presence', ({ session, stanza }) => flush(ctx, session, stanza));
      ctx.hooks.on('offline-stored', ({ owner }) => flushToOnline(ctx, owner));
    }
  },
});

/** XEP-0203: the delay stamps on stored messages and on probe answers; declared for the specification table. */
export const delayedDelivery = defineFeature({
  id: 'xep-0203-delay',
  spec: { xep: 203, title: 'Delayed Delivery' },
  roles: ['router', 'presence'],
});
