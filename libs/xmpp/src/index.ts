// @starling/xmpp: addresses, the element model, namespaces, errors and the hardened stream parser (and the
// bounded map their caches share).
export * from './bounded-map.ts';
export * from './element.ts';
export * from './errors.ts';
export * from './jid.ts';
export * from './namespaces.ts';
export * from './stanza.ts';
export * from './scram.ts';
export * from './stream-parser.ts';
