// @starling/all-in-one: the embedded shape and the `starling` command.
export { startEmbedded, databaseFile, type EmbeddedServer } from './server.ts';
export { loadTlsCredentials, type TlsCredentials } from './certificate.ts';
export { main } from './cli.ts';
