// RFC 6120 §7: the full JID a bind request asks for, and the reply that confirms it.
import { randomBytes } from 'node:crypto';
import { attr, Jid, JidError, NS_BIND, StanzaError, xml, type Element } from '@starling/xmpp';

/** RFC 7622 §3.4: a resourcepart is at most 1023 octets. */
const MAX_RESOURCE_BYTES = 1023;

/** Whether `el` is a resource binding request (or anything carrying a bind payload). */
export function isBindIq(el: Element): boolean {
  return el.name === 'iq' && el.getChild('bind', NS_BIND) !== undefined;
}

/**
 * The full JID for a bind request of `username`: the client's resource, prepared, or a random one when it
 * asked for none (RFC 6120 §7.6). Throws a StanzaError for a request that is not valid.
 */
export function requestedJid(iq: Element, username: string, domain: string): Jid {
  if (attr(iq, 'type') !== 'set' || attr(iq, 'id') === undefined) throw new StanzaError('bad-request');
  const requested = iq.getChild('bind', NS_BIND)?.getChildText('resource') ?? '';
  const resource = requested.trim() === '' ? randomBytes(9).toString('base64url') : requested;
  try {
    const jid = Jid.of(username, domain, resource);
    if (Buffer.byteLength(jid.resource, 'utf8') > MAX_RESOURCE_BYTES) throw new JidError('resource too long');
    return jid;
  } catch (err) {
    if (err instanceof JidError) throw new StanzaError('bad-request', 'This resource is not allowed');
    throw err;
  }
}

/** The bind result (RFC 6120 §7.6.1). */
export function bindResult(iq: Element, jid: Jid): Element {
  return xml(
    'iq',
    { type: 'result', id: attr(iq, 'id') },
    xml('bind', { xmlns: NS_BIND }, xml('jid', null, jid.toString())),
  );
}
