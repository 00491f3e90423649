// Starts a Starling server for one test file: its own data directory, ephemeral loopback ports, silent logs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLogger,
  parseConfig,
  silentLogger,
  type Config,
  type ConfigInput,
  type Feature,
} from '@starling/core';
import { enabledFeatures } from '@starling/features';
import { openSqliteStore } from '@starling/store';
import { deriveAllScramKeys } from '@starling/xmpp';
import { databaseFile, startEmbedded, type EmbeddedServer } from '@starling/all-in-one';

export interface TestServer {
  readonly config: Config;
  readonly domain: string;
  readonly host: string;
  readonly ports: EmbeddedServer['ports'];
  /** The server's certificate, to pin in raw TLS clients. */
  readonly cert: string;
  /** Creates an account the way `starling user add` does. */
  addUser(username: string, password: string): Promise<void>;
  stop(): Promise<void>;
}

/** Merges nested overrides into the test defaults. */
function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof current === 'object' &&
      current !== null
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

/** Starts a server; `extraFeatures` are registered after the configured ones (for fault injection). */
export async function startTestServer(
  overrides: ConfigInput = {},
  extraFeatures: readonly Feature[] = [],
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'starling-test-'));
  const config = parseConfig(
    merge(
      {
        domain: 'localhost',
        listen: { address: '127.0.0.1', c2sPort: 0, directTlsPort: 0, httpPort: 0 },
        dataDir,
        registration: 'open',
        log: { level: 'silent' },
      },
      overrides,
    ),
  );
  const log = process.env.STARLING_TEST_LOG ? createLogger(process.env.STARLING_TEST_LOG) : silentLogger();
  const server = await startEmbedded(config, log, [...enabledFeatures(config), ...extraFeatures]);
  return {
    config,
    domain: config.domain,
    host: config.listen.address,
    ports: server.ports,
    cert: server.tls.cert,
    async addUser(username, password) {
      const store = await openSqliteStore(databaseFile(config));
      try {
        const scram = await deriveAllScramKeys(password, config.auth.scramIterations);
        if (!(await store.accounts.create({ username, scram, createdAt: Date.now() }))) {
          throw new Error(`user ${username} exists`);
        }
      } finally {
        await store.close();
      }
    },
    async stop() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
