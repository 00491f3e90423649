// @starling/adapters: the embedded shape's adapters (in-process bus, in-memory registry, function-call delivery).
export * from './local-delivery.ts';
export * from './memory-session-registry.ts';
export * from './memory-stanza-bus.ts';
