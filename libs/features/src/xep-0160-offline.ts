// XEP-0160: Best Practices for Handling Offline Messages, with XEP-0203 delay stamps. Stores, then flushes.
import { defineFeature, type FeatureContext } from '@starling/core';
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
} from '@starling/xmpp';

/** XEP-0085 §5.5: a notification without content is never stored, nor bounced as undeliverable. */
function isChatStateOnly(stanza: Element): boolean {
  const children = stanza.getChildElements();
  return children.length > 0 && children.every((child) => child.getNS() === NS_CHATSTATES);
}

async function store(ctx: FeatureContext, stanza: Element, username: string): Promise<'handled' | undefined> {
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
    username,
    stamped.toString(),
    now,
    ctx.config.limits.offlineMessages,
  );
  // A full queue bounces the message like an unavailable recipient (RFC 6121 §8.5.2.2.1).
  if (!stored) await ctx.routing.route(errorReply(stanza, 'service-unavailable'));
  return 'handled';
}

function priorityOf(presence: Element, session: SessionRecord): number {
  const text = presence.getChildText('priority');
  const value = text === null ? Number.NaN : Number.parseInt(text, 10);
  return Number.isNaN(value) ? session.priority : value;
}

/** Delivers stored messages oldest first, and removes those that reached the session. */
async function flush(ctx: FeatureContext, session: SessionRecord, presence: Element): Promise<void> {
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

export default defineFeature({
  id: 'xep-0160-offline',
  spec: { xep: 160, title: 'Best Practices for Handling Offline Messages' },
  roles: ['router', 'presence'],
  disco: { features: [NS_MSGOFFLINE] },
  setup(ctx) {
    if (ctx.role === 'router') {
      ctx.hooks.on('message-undeliverable', ({ stanza, to }) => store(ctx, stanza, to.local));
    } else {
      ctx.hooks.on('initial-presence', ({ session, stanza }) => flush(ctx, session, stanza));
    }
  },
});

/** XEP-0203: the delay stamps on stored messages and on probe answers; declared for the specification table. */
export const delayedDelivery = defineFeature({
  id: 'xep-0203-delay',
  spec: { xep: 203, title: 'Delayed Delivery' },
  roles: ['router', 'presence'],
});
