// RFC 6120 §10 and RFC 6121 §8.5: what the router does with a stanza a local session sent.
import type { Config, Hooks, IqTable, Routing, StanzaOrigin } from '@starling/core';
import type { Store } from '@starling/ports';
import { attr, errorReply, Jid, type Element, type StanzaErrorCondition } from '@starling/xmpp';

/** Sends a reply to the session the stanza came from. */
export type ReplyToSender = (reply: Element) => Promise<void>;

/**
 * Handles one stanza from the local session `from` (a full JID); `reply` reaches that session, and
 * `origin` names its stream (none: sent on the user's behalf).
 */
export type ClientStanzaHandler = (
  stanza: Element,
  from: Jid,
  reply: ReplyToSender,
  origin?: StanzaOrigin,
) => Promise<void>;

const NO_ORIGIN: StanzaOrigin = { edgeId: '', sessionId: '' };

export function createClientStanzaHandler(deps: {
  config: Config;
  store: Store;
  hooks: Hooks;
  iq: IqTable;
  routing: Routing;
}): ClientStanzaHandler {
  const { hooks, iq, routing } = deps;
  const domain = deps.config.domain;

  async function blocked(stanza: Element, from: Jid, to: Jid): Promise<boolean> {
    return (await hooks.run('stanza-outbound', { stanza, from, to })) === 'handled';
  }

  async function handleIq(
    stanza: Element,
    from: Jid,
    to: Jid,
    reply: ReplyToSender,
    origin: StanzaOrigin,
  ): Promise<void> {
    const type = attr(stanza, 'type');
    if (type === 'result' || type === 'error') {
      // Answers to the server or to a bare JID have nobody waiting for them (RFC 6120 §8.2.3).
      if (to.local === '' || to.isBare) return;
      if (await blocked(stanza, from, to)) return;
      return routing.route(stanza);
    }
    if (type !== 'get' && type !== 'set') return reply(errorReply(stanza, 'bad-request'));
    if (to.local === '') {
      if (to.resource !== '') return reply(errorReply(stanza, 'service-unavailable'));
      return reply(await iq.dispatch(stanza, from, to, 'server'));
    }
    if (!to.isBare) {
      if (await blocked(stanza, from, to)) return;
      return routing.route(stanza);
    }
    // RFC 6120 §10.3.3: the sender's own bare JID is answered by the server on the account's behalf.
    if (to.equals(from.bare())) {
      if ((await hooks.run('account-iq', { stanza, from, origin })) === 'handled') return;
      return reply(await iq.dispatch(stanza, from, to, 'account'));
    }
    // RFC 6121 §8.5.1 and §8.5.2.1.3: another account's bare JID, also answered on its behalf.
    if (await blocked(stanza, from, to)) return;
    if ((await hooks.run('stanza-inbound', { stanza, from, to })) === 'handled') return;
    if ((await deps.store.accounts.get(to.local)) === undefined) {
      return reply(errorReply(stanza, 'service-unavailable'));
    }
    return reply(await iq.dispatch(stanza, from, to, 'account'));
  }

  return async (stanza, from, reply, origin = NO_ORIGIN) => {
    const answer = (condition: StanzaErrorCondition): Promise<void> => {
      const type = attr(stanza, 'type');
      return type === 'error' || type === 'result' ? Promise.resolve() : reply(errorReply(stanza, condition));
    };
    const toAttr = attr(stanza, 'to');
    // RFC 6120 §10.3: a stanza without 'to' is for the sender's own account.
    const to = toAttr === undefined ? from.bare() : Jid.tryParse(toAttr);
    if (to === undefined) return answer('jid-malformed');
    // No server-to-server yet: every other domain is unreachable.
    if (to.domain !== domain) return answer('remote-server-not-found');
    switch (stanza.name) {
      case 'iq':
        return handleIq(stanza, from, to, reply, origin);
      case 'message':
        if (toAttr === undefined) stanza.attrs.to = to.toString();
        if (await blocked(stanza, from, to)) return;
        return routing.route(stanza);
      default:
        // Edges publish only stanzas; presence went to the presence role before this point.
        return;
    }
  };
}
