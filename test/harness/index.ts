// The conformance harness: a server per test file, library clients with an inbox, and a raw-socket client.
export * from './client.ts';
export * from './raw-client.ts';
export * from './server.ts';
export * from './shape.ts';
