#!/usr/bin/env node
// Runs the TypeScript sources directly, with no build step: the hooks in typescript-hooks.js strip the
// types with esbuild as each file loads. They do so on every Node, also where Node could strip types
// itself (22.18+, 24): Node's own stripper leaves an idle server about 10 MB larger.
import { register } from 'node:module';

register('./typescript-hooks.js', import.meta.url);
// Stack traces point into the .ts files through the source maps the hooks add.
process.setSourceMapsEnabled(true);
await import('../services/all-in-one/src/main.ts');
