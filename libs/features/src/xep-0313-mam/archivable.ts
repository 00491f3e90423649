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
  const children = stanza.getChildElements();
  const hinted = (hint: string): boolean => children.some((child) => child.is(hint, NS_HINTS));
  if (hinted('no-store') || hinted('no-permanent-store')) return false;
  if (stanza.getChild('body') !== undefined || hinted('store')) return true;
  return children.some((child) => ENCRYPTED.some(([name, ns]) => child.is(name, ns)));
}
