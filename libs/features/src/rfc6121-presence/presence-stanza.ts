// RFC 6121 §4.7: presence syntax checks, and the presence stanzas the server writes itself.
import { type Element, NS_DELAY, parseTrusted, StanzaError, xml } from '@starling/xmpp';
import type { LastActivity } from '@starling/ports';

/** The presence types of RFC 6121 §4.7.1, with "available" standing for an absent type. */
export const PRESENCE_TYPES: ReadonlySet<string> = new Set([
  'available',
  'unavailable',
  'subscribe',
  'subscribed',
  'unsubscribe',
  'unsubscribed',
  'probe',
  'error',
]);

const SHOW_VALUES: ReadonlySet<string> = new Set(['away', 'chat', 'dnd', 'xa']);

/** A copy of `stanza` with `attrs` applied; an undefined value removes the attribute. */
export function withAttrs(stanza: Element, attrs: Readonly<Record<string, string | undefined>>): Element {
  const copy = parseTrusted(stanza.toString());
  const merged: Record<string, unknown> = { ...copy.attrs, ...attrs };
  copy.attrs = Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined));
  return copy;
}

/**
 * The priority of an available presence (§4.7.2.3): an integer from -128 to 127, 0 when absent.
 * Throws bad-request for anything else, and for a malformed <show/> (§4.7.2.1).
 */
export function checkAvailable(stanza: Element): number {
  const shows = stanza.getChildren('show');
  if (shows.length > 1) throw new StanzaError('bad-request', 'more than one <show/>');
  const show = shows[0];
  if (show !== undefined && !SHOW_VALUES.has(show.getText())) {
    throw new StanzaError('bad-request', 'unknown <show/> value');
  }
  const priorities = stanza.getChildren('priority');
  if (priorities.length > 1) throw new StanzaError('bad-request', 'more than one <priority/>');
  const priority = priorities[0];
  if (priority === undefined) return 0;
  const text = priority.getText().trim();
  if (!/^[+-]?\d+$/.test(text)) throw new StanzaError('bad-request', 'priority is not an integer');
  const value = Number(text);
  if (value < -128 || value > 127) throw new StanzaError('bad-request', 'priority is outside -128..127');
  // "-0" parses to negative zero; records should hold a plain 0.
  return value === 0 ? 0 : value;
}

/** The text of the first <status/>, or ''. */
export function statusText(stanza: Element): string {
  return stanza.getChildText('status') ?? '';
}

function stamp(at: number): string {
  // XEP-0082 DateTime in UTC; whole seconds are what clients display.
  return new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The unavailable presence answered to a probe for an account with no available resource (§4.3.2),
 * dated with XEP-0203 from the last logout when known.
 */
export function unavailableSince(
  from: string,
  to: string,
  domain: string,
  last: LastActivity | undefined,
): Element {
  return xml(
    'presence',
    { from, to, type: 'unavailable' },
    last !== undefined && last.status !== '' ? xml('status', null, last.status) : null,
    last !== undefined ? xml('delay', { xmlns: NS_DELAY, from: domain, stamp: stamp(last.at) }) : null,
  );
}
