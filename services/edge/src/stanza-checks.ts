// RFC 6120 §8 and RFC 6121: what the edge checks on a bound client's stanza before it goes on the bus.
import {
  attr,
  Jid,
  NS_CARBONS,
  NS_FORWARD,
  NS_MAM,
  NS_ROSTER,
  StanzaError,
  StreamError,
  type Element,
} from '@starling/xmpp';

const IQ_TYPES = new Set(['get', 'set', 'result', 'error']);

function childElements(el: Element): Element[] {
  return el.children.filter((child): child is Element => typeof child !== 'string');
}

/** Whether a message carries a wrapper only the server may create (XEP-0280, XEP-0313, XEP-0297). */
function carriesForgedWrapper(message: Element): boolean {
  // `is` resolves prefixes, so `<c:sent xmlns:c='urn:xmpp:carbons:2'/>` is caught as well.
  return childElements(message).some(
    (child) =>
      child.is('sent', NS_CARBONS) ||
      child.is('received', NS_CARBONS) ||
      child.is('result', NS_MAM) ||
      child.is('forwarded', NS_FORWARD),
  );
}

/**
 * Checks a client stanza (`message`, `presence` or `iq`) of the session bound to `full`. Throws a
 * StreamError when the stream must end (RFC 6120 §4.9.3.9 invalid-from), a StanzaError when only the
 * stanza is refused; returns the parsed `to`, if any.
 */
export function checkClientStanza(stanza: Element, full: Jid): Jid | undefined {
  const from = attr(stanza, 'from');
  if (from !== undefined) {
    const claimed = Jid.tryParse(from);
    if (claimed === undefined || !(claimed.equals(full) || claimed.equals(full.bare()))) {
      throw new StreamError('invalid-from');
    }
  }
  const toText = attr(stanza, 'to');
  let to: Jid | undefined;
  if (toText !== undefined) {
    to = Jid.tryParse(toText);
    if (to === undefined) throw new StanzaError('jid-malformed');
  }
  if (stanza.name === 'iq') checkIq(stanza, to, full);
  if (stanza.name === 'message' && carriesForgedWrapper(stanza)) {
    throw new StanzaError('not-acceptable', 'Only the server may send this wrapper');
  }
  return to;
}

/** RFC 6120 §8.2.3: an id, a known type, and exactly one payload on requests. */
function checkIq(iq: Element, to: Jid | undefined, full: Jid): void {
  const type = attr(iq, 'type');
  if (attr(iq, 'id') === undefined || type === undefined || !IQ_TYPES.has(type)) {
    throw new StanzaError('bad-request');
  }
  if (type !== 'get' && type !== 'set') return;
  const payload = childElements(iq);
  if (payload.length !== 1) throw new StanzaError('bad-request', 'A request carries exactly one payload');
  // RFC 6121 §2.1.6: roster pushes come from the user's server (or bare JID), never from another client.
  const query = payload[0];
  if (type === 'set' && query?.is('query', NS_ROSTER) === true) {
    if (to !== undefined && !to.equals(full.bare())) throw new StanzaError('forbidden');
  }
}
