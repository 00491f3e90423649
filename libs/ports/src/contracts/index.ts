// Port contract suites: one per port, run by each adapter's tests so every backend keeps the same promises.
export * from './delivery-contract.ts';
export * from './session-registry-contract.ts';
export * from './stanza-bus-contract.ts';
export * from './store-contract.ts';
export * from './support.ts';
