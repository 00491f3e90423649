// The cluster shape of the test server: two edges, two routers, presence and archive, each its own process,
// on the backends vitest's globalSetup shared out; every test file gets a fresh database, an empty session
// registry and new topics and consumer groups, so nothing of one file reaches the next.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import {
  GROUP_ARCHIVE,
  GROUP_PRESENCE,
  GROUP_ROUTER,
  TOPIC_ARCHIVE,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
} from '@starling/core';
import {
  startLocalCluster,
  testRoleEnv,
  type BackendAddresses,
  type LocalCluster,
} from '../../deploy/local/cluster.ts';
import { createDatabase } from '../../deploy/local/postgres.ts';
import { printRoleLogs, trackRunning } from './role-logs.ts';

const RESET_MS = 30_000;
const TOPICS: readonly string[] = [TOPIC_STANZAS, TOPIC_PRESENCE, TOPIC_ARCHIVE];
const GROUPS: readonly string[] = [GROUP_ROUTER, GROUP_PRESENCE, GROUP_ARCHIVE];
/** Loaded into every role process when a test file brings features of its own. */
const ROLE_FEATURES = new URL('./role-features.ts', import.meta.url).href;

async function pause(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Deletes the topics and consumer groups a previous test file's roles used (they exited, so the groups
 * are empty) and waits until the broker no longer lists them; the next roles create them afresh.
 */
async function freshTopics(brokers: readonly string[]): Promise<void> {
  const admin = new Kafka({
    clientId: 'starling-test-reset',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const deadline = Date.now() + RESET_MS;
    const ours = async (): Promise<string[]> =>
      (await admin.listTopics()).filter((topic) => TOPICS.includes(topic));
    const existing = await ours();
    if (existing.length > 0) await admin.deleteTopics({ topics: existing, timeout: RESET_MS });
    for (;;) {
      const groups = (await admin.listGroups()).groups
        .map((group) => group.groupId)
        .filter((group) => GROUPS.includes(group));
      const topics = await ours();
      if (groups.length === 0 && topics.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`Kafka still has ${[...groups, ...topics].join(', ')} after ${RESET_MS} ms`);
      }
      // A member of a role that was killed stays until its session times out; deleting fails until then.
      if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
      await pause(100);
    }
  } finally {
    await admin.disconnect();
  }
}

async function emptyRegistry(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.flushall();
  } finally {
    redis.disconnect();
  }
}

/** Whether a server of this process runs on the shared backends (test files run one at a time). */
let sharedInUse = false;

/**
 * Starts the roles with `settings` (a configuration, written to a file each role reads) and, when given,
 * the features of `featureModule` (its `features` export) registered in every role.
 */
export async function startClusterShape(
  settings: Record<string, unknown>,
  featureModule: URL | undefined,
): Promise<{ cluster: LocalCluster; stop(): Promise<void> }> {
  // Absent when the cluster shape was asked for without the globalSetup. A second server a file runs
  // next to its first would share the first one's topics and groups: both get backends of their own.
  const provided = inject('starlingBackends') as BackendAddresses | undefined;
  const shared = sharedInUse ? undefined : provided;
  let backends: BackendAddresses | undefined;
  if (shared) {
    sharedInUse = true;
    await Promise.all([freshTopics(shared.kafkaBrokers), emptyRegistry(shared.redisUrl)]);
    const database = `conformance_${randomBytes(6).toString('hex')}`;
    backends = { ...shared, postgresUrl: await createDatabase(shared.postgresUrl, database) };
  }
  const dir = await mkdtemp(join(tmpdir(), 'starling-test-cluster-'));
  try {
    const configFile = join(dir, 'starling.yaml');
    await writeFile(configFile, stringify(settings));
    const cluster = await startLocalCluster({
      ...(backends === undefined ? {} : { backends }),
      configFile,
      dataDir: join(dir, 'data'),
      env: {
        ...testRoleEnv(),
        ...(featureModule === undefined ? {} : { STARLING_TEST_FEATURES: featureModule.href }),
      },
      ...(featureModule === undefined ? {} : { nodeOptions: ['--import', 'tsx', '--import', ROLE_FEATURES] }),
    });
    const untrack = trackRunning(cluster);
    return {
      cluster,
      async stop() {
        const codes = await cluster.stop();
        untrack();
        if (shared) sharedInUse = false;
        if (process.env.STARLING_TEST_LOG) printRoleLogs(cluster);
        await rm(dir, { recursive: true, force: true });
        const failed = cluster.processes.filter((_, index) => codes[index] !== 0);
        if (failed.length > 0) {
          throw new Error(
            `roles did not stop cleanly: ${failed.map((p) => `${p.name}\n${p.output()}`).join('\n')}`,
          );
        }
      },
    };
  } catch (err) {
    if (shared) sharedInUse = false;
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
