// RFC 6121 §3-4: what the presence role hands this feature, sorted by side (sender's, recipient's, session end).
import type { FeatureContext, SessionEndEnvelope, StanzaEnvelope } from '@starling/core';
import type { SessionRecord } from '@starling/ports';
import { attr, type Element, errorReply, Jid, parseTrusted, StanzaError, stanzaType } from '@starling/xmpp';
import { availablePresence, directedPresence, endSession, unavailablePresence } from './broadcast.ts';
import { PRESENCE_TYPES, withAttrs } from './presence-stanza.ts';
import { isSubscriptionType } from './subscription-state.ts';
import { inboundSubscription, outboundSubscription } from './subscriptions.ts';
import { answerProbe } from './user-presence.ts';

/** The presence role's entry points into the feature, one per kind of envelope on the presence topic. */
export interface PresenceHandler {
  /**
   * The sender's side of a presence stanza: from a local session (`from` is its full JID), or sent by
   * the server on a user's behalf (no session). Bad input is answered to the session with a stanza error.
   */
  outbound(envelope: StanzaEnvelope): Promise<void>;
  /** The recipient's side (`dir: 'in'`): subscription stanzas and probes for a local account. */
  inbound(envelope: StanzaEnvelope): Promise<void>;
  /** A session ended; `record` is its last registry record. */
  sessionEnded(envelope: SessionEndEnvelope): Promise<void>;
}

async function senderSession(
  ctx: FeatureContext,
  envelope: StanzaEnvelope,
): Promise<SessionRecord | undefined> {
  if (envelope.sessionId === '') return undefined;
  const session = await ctx.registry.get(envelope.from);
  return session?.sessionId === envelope.sessionId ? session : undefined;
}

async function outbound(
  ctx: FeatureContext,
  envelope: StanzaEnvelope,
  stanza: Element,
  session: SessionRecord | undefined,
): Promise<void> {
  const type = stanzaType(stanza);
  if (!PRESENCE_TYPES.has(type)) throw new StanzaError('bad-request', 'unknown presence type');
  const sender = Jid.parse(envelope.from);
  if (isSubscriptionType(type)) {
    // Subscriptions belong to the account, so they count even if the sending session is gone meanwhile.
    await outboundSubscription(ctx, sender, stanza, type);
    return;
  }
  // Presence speaks for a session: a session that is gone has its unavailable sent by its session end.
  if (envelope.sessionId !== '' && session === undefined) return;
  if (attr(stanza, 'to') !== undefined) {
    await directedPresence(ctx, sender, session, stanza, type);
    return;
  }
  if (session === undefined) return;
  if (type === 'available') await availablePresence(ctx, session, stanza);
  else if (type === 'unavailable') await unavailablePresence(ctx, session, stanza);
  else if (type === 'probe') throw new StanzaError('bad-request', 'a probe needs a "to"');
  // An error with no "to" has nowhere to go and must not be answered.
}

async function inbound(ctx: FeatureContext, stanza: Element): Promise<void> {
  const type = stanzaType(stanza);
  if (isSubscriptionType(type)) {
    await inboundSubscription(ctx, stanza, type);
    return;
  }
  const from = attr(stanza, 'from');
  const to = Jid.tryParse(attr(stanza, 'to') ?? '');
  if (type !== 'probe' || from === undefined || to === undefined || to.local === '' || !ctx.isLocal(to)) {
    ctx.log.debug({ stanza: stanza.toString() }, 'presence stanza with nothing to do on the recipient side');
    return;
  }
  await answerProbe(ctx, to.bare(), from);
}

/** The handler for one feature context. */
export function createPresenceHandler(ctx: FeatureContext): PresenceHandler {
  return {
    async outbound(envelope) {
      const stanza = withAttrs(parseTrusted(envelope.xml), { from: envelope.from });
      if (stanza.name !== 'presence') {
        ctx.log.warn({ stanza: envelope.xml }, 'not a presence stanza; dropped');
        return;
      }
      const session = await senderSession(ctx, envelope);
      try {
        await outbound(ctx, envelope, stanza, session);
      } catch (err) {
        if (!(err instanceof StanzaError)) {
          ctx.log.error({ err, stanza: envelope.xml }, 'presence handling failed');
        }
        // Never answer an error with an error; with no session there is no one to answer.
        if (session === undefined || stanzaType(stanza) === 'error') return;
        await ctx.routing.deliver(
          session,
          errorReply(stanza, err instanceof StanzaError ? err : 'internal-server-error'),
        );
      }
    },
    async inbound(envelope) {
      await inbound(ctx, parseTrusted(envelope.xml));
    },
    async sessionEnded(envelope) {
      await endSession(ctx, envelope.record);
    },
  };
}
