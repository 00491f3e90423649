#!/usr/bin/env node
// Runs the TypeScript sources directly: tsx compiles them on load (no build step on Node 20 or 24).
import { register } from 'tsx/esm/api';

register();
await import('../services/all-in-one/src/main.ts');
