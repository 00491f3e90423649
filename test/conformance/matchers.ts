// Matchers for the conformance scenarios: stanzas by kind, sender and type (RFC 6120 §8), roster pushes
// (RFC 6121 §2.1.6) and stanza errors (RFC 6120 §8.3).
import type { Element } from 'ltx';
import type { Match } from '../harness/index.ts';

export const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
export const NS_ROSTER = 'jabber:iq:roster';

/** An attribute as a string; ltx types attribute values as `any`. */
export function attr(el: Element, name: string): string | undefined {
  const value: unknown = el.attrs[name];
  return typeof value === 'string' ? value : undefined;
}

export function bareJid(jid: string): string {
  return jid.split('/')[0] ?? jid;
}

export type PresenceType =
  | 'available'
  | 'unavailable'
  | 'subscribe'
  | 'subscribed'
  | 'unsubscribe'
  | 'unsubscribed'
  | 'probe'
  | 'error';

/** A presence from exactly `from`; `available` means no type attribute. */
export function presence(from: string, type: PresenceType = 'available'): Match {
  return (el) =>
    el.name === 'presence' && attr(el, 'from') === from && (attr(el, 'type') ?? 'available') === type;
}

/** A message (not an error) from exactly `from`, with `body` when given. */
export function message(from: string, body?: string): Match {
  return (el) =>
    el.name === 'message' &&
    attr(el, 'from') === from &&
    attr(el, 'type') !== 'error' &&
    (body === undefined || el.getChildText('body') === body);
}

/** Any message carrying exactly this body. */
export function messageWithBody(body: string): Match {
  return (el) => el.name === 'message' && el.getChildText('body') === body;
}

/** The error bounced for the stanza of kind `name` that was sent with `id`. */
export function bounce(name: 'message' | 'presence' | 'iq', id: string): Match {
  return (el) => el.name === name && attr(el, 'type') === 'error' && attr(el, 'id') === id;
}

/** An IQ request (get or set) from exactly `from` whose payload is `child` in `ns`. */
export function iqRequest(from: string, child: string, ns: string): Match {
  return (el) =>
    el.name === 'iq' &&
    attr(el, 'from') === from &&
    (attr(el, 'type') === 'get' || attr(el, 'type') === 'set') &&
    el.getChild(child, ns) !== undefined;
}

export interface ItemExpectation {
  /** One value, or any of several. */
  readonly subscription?: string | readonly string[];
  /** `null` demands that the attribute be absent. */
  readonly ask?: string | null;
  readonly approved?: string;
  readonly name?: string;
}

/** Whether a roster <item/> has the expected attributes. */
export function itemMatches(item: Element, expected: ItemExpectation): boolean {
  const { subscription, ask, approved, name } = expected;
  const actual = attr(item, 'subscription') ?? 'none';
  if (typeof subscription === 'string' && actual !== subscription) return false;
  if (Array.isArray(subscription) && !subscription.includes(actual)) return false;
  if (ask === null && attr(item, 'ask') !== undefined) return false;
  if (typeof ask === 'string' && attr(item, 'ask') !== ask) return false;
  if (approved !== undefined && attr(item, 'approved') !== approved) return false;
  if (name !== undefined && attr(item, 'name') !== name) return false;
  return true;
}

/**
 * A roster push (RFC 6121 §2.1.6) to the account `owner` about `jid`. A client must ignore pushes with a
 * `from` other than its own bare JID, so a push from anywhere else does not match.
 */
export function rosterPush(owner: string, jid: string, expected: ItemExpectation = {}): Match {
  return (el) => {
    if (el.name !== 'iq' || attr(el, 'type') !== 'set') return false;
    const from = attr(el, 'from');
    if (from !== undefined && from !== owner) return false;
    const items = el.getChild('query', NS_ROSTER)?.getChildren('item') ?? [];
    return (
      items.length === 1 && items.some((item) => attr(item, 'jid') === jid && itemMatches(item, expected))
    );
  };
}

/** Any roster push at all. */
export const anyRosterPush: Match = (el) =>
  el.name === 'iq' && attr(el, 'type') === 'set' && el.getChild('query', NS_ROSTER) !== undefined;

/** The roster items of a roster result or push. */
export function rosterItems(el: Element): Element[] {
  return el.getChild('query', NS_ROSTER)?.getChildren('item') ?? [];
}

export function rosterItem(el: Element, jid: string): Element | undefined {
  return rosterItems(el).find((item) => attr(item, 'jid') === jid);
}

export function groupsOf(item: Element): string[] {
  return item
    .getChildren('group')
    .map((group) => group.getText())
    .sort();
}

export interface StanzaErrorInfo {
  readonly type: string | undefined;
  /** The defined condition (RFC 6120 §8.3.3), if any. */
  readonly condition: string | undefined;
  readonly error: Element | undefined;
}

/** The error of a stanza of type "error". */
export function stanzaError(el: Element): StanzaErrorInfo {
  const error = el.getChild('error');
  const condition = error
    ?.getChildElements()
    .find((child) => child.getNS() === NS_STANZAS && child.name !== 'text');
  return { type: error ? attr(error, 'type') : undefined, condition: condition?.name, error };
}

/** "result", or "error: <condition>", so that a failed assertion shows what came back. */
export function outcome(el: Element): string {
  const type = attr(el, 'type');
  return type === 'error' ? `error: ${stanzaError(el).condition ?? '(no condition)'}` : (type ?? '(no type)');
}
