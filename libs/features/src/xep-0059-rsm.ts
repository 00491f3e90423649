// XEP-0059: Result Set Management. Reads the <set/> of a request and writes the <set/> of its answer.
import { defineFeature } from '@starling/core';
import { NS_RSM, StanzaError, xml, type Element } from '@starling/xmpp';

/** What a request's `<set/>` asks for (§2). */
export interface RsmRequest {
  /** Most items in the page; absent lets the responder choose. */
  readonly max?: number;
  /** The page starts after this item. */
  readonly after?: string;
  /** The page ends before this item; `''` asks for the last page (§2.5). */
  readonly before?: string;
}

/** The page an answer describes. */
export interface RsmPage {
  readonly first?: string;
  readonly last?: string;
  readonly count?: number;
}

function onlyChild(set: Element, name: string): Element | undefined {
  const found = set.getChildren(name);
  if (found.length > 1) throw new StanzaError('bad-request', `more than one <${name}/> in the result set`);
  return found[0];
}

/** Reads a request's `<set/>` (none: `{}`); throws StanzaError for what it cannot honour. */
export function parseRsm(set: Element | undefined): RsmRequest {
  if (set === undefined) return {};
  // §2.6: jumping to an index is optional, and these archives do not support it.
  if (set.getChild('index') !== undefined) {
    throw new StanzaError('feature-not-implemented', 'paging by index is not supported');
  }
  let request: { max?: number; after?: string; before?: string } = {};
  const max = onlyChild(set, 'max');
  if (max !== undefined) {
    const text = max.getText().trim();
    if (!/^\d{1,9}$/.test(text))
      throw new StanzaError('bad-request', '<max/> must be a non-negative integer');
    request = { ...request, max: Number(text) };
  }
  const after = onlyChild(set, 'after');
  if (after !== undefined) {
    const id = after.getText();
    if (id === '') throw new StanzaError('bad-request', '<after/> needs the id of an item');
    request = { ...request, after: id };
  }
  const before = onlyChild(set, 'before');
  if (before !== undefined) request = { ...request, before: before.getText() };
  return request;
}

/** The answer's `<set/>`; an empty page carries only its count (§2.7). */
export function rsmSet(page: RsmPage): Element {
  return xml(
    'set',
    { xmlns: NS_RSM },
    page.first === undefined ? null : xml('first', null, page.first),
    page.last === undefined ? null : xml('last', null, page.last),
    page.count === undefined ? null : xml('count', null, String(page.count)),
  );
}

/** Paging of XEP-0313 archive queries; declared for disco and the specification table. */
export default defineFeature({
  id: 'xep-0059-rsm',
  spec: { xep: 59, title: 'Result Set Management' },
  roles: ['archive'],
  disco: { accountFeatures: [NS_RSM] },
});
