// XEP-0049: Private XML Storage. One document per namespace, readable and writable by its account only.
import { defineFeature, type IqRequest } from '@starling/core';
import {
  NS_CLIENT,
  NS_PRIVATE,
  NS_SERVER,
  parseTrusted,
  StanzaError,
  xml,
  type Element,
} from '@starling/xmpp';

/** Namespaces that are stanza content rather than private data. */
const RESERVED: ReadonlySet<string> = new Set([NS_CLIENT, NS_SERVER, NS_PRIVATE]);

/** The single namespaced child of the query and its namespace (§2.3). */
function documentOf({ from, to, payload }: IqRequest): { element: Element; ns: string } {
  if (!to.equals(from.bare())) throw new StanzaError('forbidden', 'private data belongs to its own account');
  const children = payload.getChildElements();
  const element = children[0];
  if (children.length !== 1 || element === undefined) {
    throw new StanzaError('not-acceptable', 'exactly one namespaced element is expected');
  }
  const ns = element.getNS();
  if (ns === undefined || ns === '' || RESERVED.has(ns)) {
    throw new StanzaError('not-acceptable', 'the element needs a namespace of its own');
  }
  return { element, ns };
}

export default defineFeature({
  id: 'xep-0049-private',
  spec: { xep: 49, title: 'Private XML Storage' },
  roles: ['router'],
  disco: { features: [NS_PRIVATE] },
  setup(ctx) {
    ctx.iq.onGet(
      NS_PRIVATE,
      'query',
      async (request) => {
        const { element, ns } = documentOf(request);
        const stored = await ctx.store.privateXml.get(request.from.local, ns);
        // Nothing stored: the requested element comes back empty.
        const answer = stored === undefined ? xml(element.name, { xmlns: ns }) : parseTrusted(stored);
        return xml('query', { xmlns: NS_PRIVATE }, answer);
      },
      { targets: ['account'] },
    );
    ctx.iq.onSet(
      NS_PRIVATE,
      'query',
      async (request) => {
        const { element, ns } = documentOf(request);
        // Stored on its own, so the inherited default namespace has to be written onto it.
        if (!element.name.includes(':')) element.attrs.xmlns = ns;
        const document = element.toString();
        if (Buffer.byteLength(document, 'utf8') > ctx.config.limits.storageBytes) {
          throw new StanzaError('policy-violation', 'the document is too large');
        }
        await ctx.store.privateXml.set(request.from.local, ns, document);
        return undefined;
      },
      { targets: ['account'] },
    );
  },
});
