// The XML element model (ltx) and trusted-input helpers for stanzas Starling itself serialized.
import * as ltx from 'ltx';

export type Element = ltx.Element;
export const Element = ltx.Element;

/** Builds an element: `xml('iq', { type: 'result', id }, child...)`. Undefined attributes are left out. */
export function xml(
  name: string,
  attrs?: Readonly<Record<string, string | number | undefined>> | null,
  ...children: (Element | string | null | undefined | false)[]
): Element {
  const clean: Record<string, string> = {};
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== undefined) clean[key] = String(value);
    }
  }
  const el = new ltx.Element(name, clean);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (typeof child === 'string') el.t(child);
    else el.cnode(child);
  }
  return el;
}

/**
 * Parses XML that Starling serialized itself (bus records, stored offline messages).
 * Never use it on network input: that goes through the hardened stream parser.
 */
export function parseTrusted(text: string): Element {
  const el = ltx.parse(text) as Element | undefined;
  if (!el) throw new Error('empty XML');
  return el;
}

export const escapeXml: (text: string) => string = ltx.escapeXML;
export const escapeXmlText: (text: string) => string = ltx.escapeXMLText;
