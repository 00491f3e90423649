// Starts a Starling server for one test file, in the shape STARLING_TEST_SHAPE names: `embedded` (the
// default: every role in this process, its own data directory) or `cluster` (every role its own process on
// Kafka, Redis and PostgreSQL, two edges); ephemeral loopback ports, quiet logs.
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
import type { ClientEndpoint } from './client.ts';
import { TEST_SHAPE, type TestShape } from './shape.ts';

export interface TestServer {
  readonly shape: TestShape;
  readonly config: Config;
  readonly domain: string;
  readonly host: string;
  /** The ports of the first edge (the only one of the embedded shape). */
  readonly ports: EmbeddedServer['ports'];
  /** The server's certificate (every edge's), to pin in raw TLS clients. */
  readonly cert: string;
  /** Where clients reach the server: the embedded server, or each edge of the cluster. */
  readonly edges: readonly ClientEndpoint[];
  /**
   * The edge for the next connection: the edges in turn, so that the sessions a scenario opens one after
   * another land on different edges of a cluster.
   */
  nextEdge(): ClientEndpoint;
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

/**
 * Starts a server. `featureModule` names a module whose `features` (fault injection) are registered after
 * the configured ones; in the cluster shape every role process loads it.
 */
export async function startTestServer(overrides: ConfigInput = {}, featureModule?: URL): Promise<TestServer> {
  const settings = merge(
    { domain: 'localhost', listen: { address: '127.0.0.1' }, registration: 'open', log: { level: 'silent' } },
    overrides,
  );
  return TEST_SHAPE === 'cluster'
    ? startClusterServer(settings, featureModule)
    : startEmbeddedServer(settings, featureModule);
}

/** Hands out `edges` in turn. */
function rotation(edges: readonly ClientEndpoint[]): () => ClientEndpoint {
  let next = 0;
  return () => {
    const edge = edges[next++ % edges.length];
    if (!edge) throw new Error('the server has no edges');
    return edge;
  };
}

async function startClusterServer(
  settings: Record<string, unknown>,
  featureModule: URL | undefined,
): Promise<TestServer> {
  // Loaded only here: the embedded shape needs none of Kafka, Redis or PostgreSQL.
  const { startClusterShape } = await import('./cluster-server.ts');
  const running = await startClusterShape(settings, featureModule);
  const { cluster } = running;
  const [first] = cluster.edges;
  if (!first) throw new Error('the cluster has no edges');
  return {
    shape: 'cluster',
    config: cluster.config,
    domain: first.domain,
    host: first.host,
    ports: first.ports,
    cert: cluster.cert,
    edges: cluster.edges,
    nextEdge: rotation(cluster.edges),
    addUser: (username, password) => cluster.addUser(username, password),
    stop: () => running.stop(),
  };
}

async function startEmbeddedServer(
  settings: Record<string, unknown>,
  featureModule: URL | undefined,
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'starling-test-'));
  const config = parseConfig(
    merge({ listen: { c2sPort: 0, directTlsPort: 0, httpPort: 0 }, dataDir }, settings),
  );
  const extra =
    featureModule === undefined
      ? []
      : ((await import(featureModule.href)) as { features: readonly Feature[] }).features;
  const log = process.env.STARLING_TEST_LOG ? createLogger(process.env.STARLING_TEST_LOG) : silentLogger();
  const server = await startEmbedded(config, log, [...enabledFeatures(config), ...extra]);
  const endpoint: ClientEndpoint = {
    domain: config.domain,
    host: config.listen.address,
    ports: server.ports,
  };
  return {
    shape: 'embedded',
    config,
    domain: config.domain,
    host: config.listen.address,
    ports: server.ports,
    cert: server.tls.cert,
    edges: [endpoint],
    nextEdge: () => endpoint,
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
