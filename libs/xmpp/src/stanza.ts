// RFC 6120 §8: stanza kinds and small accessors used on every hot path.
import type { Element } from './element.ts';

export type StanzaName = 'message' | 'presence' | 'iq';

export function isStanza(el: Element): el is Element & { name: StanzaName } {
  return el.name === 'message' || el.name === 'presence' || el.name === 'iq';
}

export function attr(el: Element, name: string): string | undefined {
  const value: unknown = el.attrs[name];
  return typeof value === 'string' ? value : undefined;
}

/** The stanza's `type`, with RFC 6120/6121 defaults: messages "normal", presence "available". */
export function stanzaType(el: Element): string {
  const type = attr(el, 'type');
  if (type !== undefined) return type;
  if (el.name === 'message') return 'normal';
  if (el.name === 'presence') return 'available';
  return '';
}
