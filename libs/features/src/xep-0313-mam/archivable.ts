// XEP-0313 §5.1.1 with XEP-0334 hints: which messages a user archive keeps.
import { NS_HINTS, stanzaType, type Element } from '@starling/xmpp';

/**
 * End-to-end encrypted payloads: their messages may carry no body (or only a fallback one) and are the
 * conversation all the same.
 */
const ENCRYPTED: readonly (readonly [name: string, ns: string])[] = [
  ['encrypted', 'eu.siacs.conversations.axolotl'],
  ['encrypted', 'urn:xmpp:omemo:2'],
  ['openpgp', 'urn:xmpp:openpgp:0'],
  ['x', 'jabber:x:encrypted'],
];

/**
 * Chat and normal messages with a body or an encrypted payload, or that ask to be stored. Never errors,
 * headlines, groupchat (a room keeps its own archive), chat states alone, nor messages that ask not to
 * be stored.
 */
export function isArchivable(stanza: Element): boolean {
  if (stanza.name !== 'message') return false;
  const type = stanzaType(stanza);
  if (type !== 'chat' && type !== 'normal') return false;
  // One pass over the children, without copying them: every message routed to a local user comes here.
  let body = false;
  let store = false;
  let encrypted = false;
  for (const child of stanza.children) {
    if (typeof child === 'string') continue;
    const name = child.getName();
    if (name === 'body') body = true;
    else if (name === 'no-store' || name === 'no-permanent-store') {
      if (child.is(name, NS_HINTS)) return false;
    } else if (name === 'store') store ||= child.is(name, NS_HINTS);
    else encrypted ||= ENCRYPTED.some(([payload, ns]) => child.is(payload, ns));
  }
  return body || store || encrypted;
}
