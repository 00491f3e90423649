// RFC 6121 §8 and RFC 6120 §10: delivers stanzas addressed to local JIDs to the right sessions, or answers them.
import {
  defineFeature,
  encodeEnvelope,
  newEnvelopeId,
  TOPIC_PRESENCE,
  type Config,
  type Hooks,
  type Logger,
  type Routing,
} from '@starling/core';
import type {
  Delivery,
  DeliveryTarget,
  SessionRecord,
  SessionRegistry,
  StanzaBus,
  Store,
} from '@starling/ports';
import {
  attr,
  errorReply,
  Jid,
  serialize,
  stanzaType,
  type Element,
  type StanzaErrorCondition,
} from '@starling/xmpp';
import { highestPriority } from '../resources.ts';

/** Presence types the recipient's presence role must process (RFC 6121 §3 and §4.3). */
const SUBSCRIPTION_TYPES: ReadonlySet<string> = new Set([
  'subscribe',
  'subscribed',
  'unsubscribe',
  'unsubscribed',
  'probe',
]);

type MessageType = 'chat' | 'normal' | 'headline' | 'groupchat' | 'error';

/** RFC 6121 §5.2.2: an unknown message type is handled as "normal". */
function messageType(stanza: Element): MessageType {
  const type = stanzaType(stanza);
  return type === 'chat' || type === 'headline' || type === 'groupchat' || type === 'error' ? type : 'normal';
}

function parseAddress(value: string | undefined): Jid | undefined {
  return value === undefined ? undefined : Jid.tryParse(value);
}

/**
 * The server's RFC 6121 §8 delivery for local addresses. Stanzas to other domains are dropped (there is no
 * server-to-server yet; the router host answers clients with `remote-server-not-found` before routing).
 */
export function createRouting(deps: {
  config: Config;
  registry: SessionRegistry;
  delivery: Delivery;
  bus: StanzaBus;
  store: Store;
  hooks: Hooks;
  log: Logger;
}): Routing {
  const domain = deps.config.domain;
  const serverJid = Jid.of('', domain);
  const log = deps.log.child({ component: 'routing' });

  /**
   * Hands a stanza to a session's edge. A stream-managed session that has no live connection (detached,
   * or its edge died) takes it into its XEP-0198 queue, to be sent when the stream is resumed; one that
   * was just resumed elsewhere gets it there. A live stream whose delivery failed (a deadline, a broken
   * connection to its edge) also has it queued: the stream writes it when it next sends, or a resumption.
   */
  async function deliverXml(
    session: DeliveryTarget & { readonly stream?: string },
    xml: string,
    followResumption = true,
  ): Promise<boolean> {
    const target = { edgeId: session.edgeId, sessionId: session.sessionId, jid: session.jid };
    if (await deps.delivery.deliver(target, { kind: 'stanza', xml })) return true;
    if (session.stream === undefined) return false;
    if ((await deps.registry.streamPush(session.jid, session.stream, session.sessionId, xml)) !== undefined) {
      return true;
    }
    if (!followResumption) return false;
    const current = await deps.registry.get(session.jid);
    if (current === undefined || current.sessionId === session.sessionId) return false;
    return deliverXml(current, xml, false);
  }

  async function accountExists(username: string): Promise<boolean> {
    return (await deps.store.accounts.get(username)) !== undefined;
  }

  /** Answers `stanza` with an error, unless it is itself an error or a result (RFC 6120 §8.3.1). */
  async function bounce(stanza: Element, condition: StanzaErrorCondition): Promise<void> {
    const type = attr(stanza, 'type');
    if (type === 'error' || type === 'result' || attr(stanza, 'from') === undefined) return;
    await route(errorReply(stanza, condition));
  }

  async function toPresenceRole(stanza: Element, to: Jid): Promise<void> {
    const key = to.bare().toString();
    const envelope = encodeEnvelope({
      t: 'stanza',
      dir: 'in',
      id: newEnvelopeId(),
      from: attr(stanza, 'from') ?? domain,
      sessionId: '',
      edgeId: '',
      ts: Date.now(),
      xml: serialize(stanza),
    });
    await deps.bus.publish(TOPIC_PRESENCE, key, envelope);
  }

  async function messageToBare(
    stanza: Element,
    to: Jid,
    sessions: readonly SessionRecord[],
    xml: string,
  ): Promise<void> {
    const type = messageType(stanza);
    if (type === 'error') return;
    if (type === 'groupchat') return bounce(stanza, 'service-unavailable');
    let candidates = sessions;
    // A session that left between the registry read and the delivery gets one more pass over the rest.
    for (let attempt = 0; attempt < 2; attempt++) {
      const targets =
        type === 'headline'
          ? candidates.filter((s) => s.available && s.priority >= 0)
          : highestPriority(candidates);
      if (targets.length === 0) break;
      const delivered = await Promise.all(targets.map((s) => deliverXml(s, xml)));
      if (delivered.includes(true)) return;
      const failed = new Set(targets);
      candidates = candidates.filter((s) => !failed.has(s));
    }
    if (sessions.length === 0 && !(await accountExists(to.local))) {
      return bounce(stanza, 'service-unavailable');
    }
    if ((await deps.hooks.run('message-undeliverable', { stanza, to: to.bare() })) === 'handled') return;
    if (type === 'chat' || type === 'normal') await bounce(stanza, 'service-unavailable');
  }

  async function toBare(
    stanza: Element,
    to: Jid,
    sessions: readonly SessionRecord[],
    xml: string,
  ): Promise<void> {
    switch (stanza.name) {
      case 'message':
        return messageToBare(stanza, to, sessions, xml);
      case 'presence': {
        if (SUBSCRIPTION_TYPES.has(stanzaType(stanza))) {
          // RFC 6121 §8.5.1: presence for an account that does not exist is ignored.
          if (sessions.length === 0 && !(await accountExists(to.local))) return;
          return toPresenceRole(stanza, to);
        }
        await Promise.all(sessions.filter((s) => s.available).map((s) => deliverXml(s, xml)));
        return;
      }
      case 'iq':
        // IQs to a bare JID are answered by the router host on the account's behalf; none reach here.
        return bounce(stanza, 'service-unavailable');
      default:
        return;
    }
  }

  async function toFull(
    stanza: Element,
    to: Jid,
    sessions: readonly SessionRecord[],
    xml: string,
  ): Promise<void> {
    const full = to.toString();
    const bound = sessions.find((s) => s.jid === full);
    let rest = sessions;
    if (bound) {
      if (await deliverXml(bound, xml)) return;
      rest = sessions.filter((s) => s !== bound);
    }
    // RFC 6121 §8.5.3.2: no session is bound to the full JID.
    switch (stanza.name) {
      case 'message': {
        const type = messageType(stanza);
        if (type === 'chat' || type === 'normal') return messageToBare(stanza, to.bare(), rest, xml);
        if (type === 'groupchat') return bounce(stanza, 'service-unavailable');
        return;
      }
      case 'presence':
        if (SUBSCRIPTION_TYPES.has(stanzaType(stanza))) return toBare(stanza, to.bare(), rest, xml);
        return;
      case 'iq':
        return bounce(stanza, 'service-unavailable');
      default:
        return;
    }
  }

  /** `inbound` false: the stanza had its inbound processing (archiving, blocking) when first routed. */
  async function route(stanza: Element, inbound = true): Promise<void> {
    const to = parseAddress(attr(stanza, 'to'));
    if (to === undefined) {
      log.warn({ stanza: stanza.toString() }, 'routed stanza without a valid address dropped');
      return;
    }
    if (to.domain !== domain) {
      log.debug({ to: to.toString() }, 'no server-to-server: stanza for a remote domain dropped');
      return;
    }
    // The server's own address: the router host answers IQs; messages and presence end here.
    if (to.local === '') return;
    const from = parseAddress(attr(stanza, 'from')) ?? serverJid;
    const sessions = await deps.registry.resources(to.bare().toString());
    const online = sessions.length > 0;
    if (inbound && (await deps.hooks.run('stanza-inbound', { stanza, from, to, online })) === 'handled')
      return;
    const xml = serialize(stanza);
    if (to.isBare) await toBare(stanza, to, sessions, xml);
    else await toFull(stanza, to, sessions, xml);
  }

  return {
    route: (stanza) => route(stanza),
    reroute: (stanza) => route(stanza, false),
    deliver: (session, stanza) => deliverXml(session, serialize(stanza)),
    async close(session, condition) {
      await deps.delivery.deliver(
        { edgeId: session.edgeId, sessionId: session.sessionId, jid: session.jid },
        { kind: 'close', condition },
      );
    },
  };
}

/** RFC 6121 §8: the routing rules `createRouting` applies; declared for the specification table. */
export const routingRules = defineFeature({
  id: 'rfc6121-routing',
  spec: { rfc: 6121, section: '8', title: 'Routing of messages, presence and IQs' },
  roles: ['router', 'presence'],
});
