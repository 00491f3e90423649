// The archive thread's entry, in JavaScript so that it runs before anything can load TypeScript: it
// registers the hooks the launcher uses (bin/typescript-hooks.js), then serves the archive.
import { register } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

register('../../../bin/typescript-hooks.js', import.meta.url);
process.setSourceMapsEnabled(true);
const { serveArchive } = await import('./archive-worker.ts');
serveArchive(parentPort, workerData);
