// @starling/ports: the four seams between features and backends. Adapters implement them; features use them.
export type * from './delivery.ts';
export type * from './session-registry.ts';
export type * from './stanza-bus.ts';
export type * from './store.ts';
