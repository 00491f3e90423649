// A local Starling cluster for tests: real Kafka, Redis and PostgreSQL, every role its own process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { openPostgresStore } from '@starling/store';
import { deriveAllScramKeys } from '@starling/xmpp';
import { connect, type ClientEndpoint } from '../harness/index.ts';
import { startKafka, type RunningKafka } from '../infra/kafka.ts';
import { startPostgres, type RunningPostgres } from '../infra/postgres.ts';
import { startRedis, type RunningRedis } from '../infra/redis.ts';

const BIN = new URL('../../bin/starling.js', import.meta.url).pathname;
const STARTUP_MS = 90_000;

export type RoleName = 'edge' | 'router' | 'presence' | 'archive';

export interface RoleProcess {
  readonly name: string;
  readonly role: RoleName;
  readonly child: ChildProcess;
  /** Client ports of an edge. */
  readonly endpoint?: ClientEndpoint;
  readonly opsPort: number;
  /** Everything the process wrote: the banner, and its JSON log lines at STARLING_TEST_LOG (default warn) or above. */
  output(): string;
  /** Resolves with the exit code once the process ended. */
  readonly exited: Promise<number | null>;
}

export interface LocalCluster {
  readonly processes: readonly RoleProcess[];
  readonly edges: readonly ClientEndpoint[];
  readonly redisPort: number;
  addUser(username: string, password: string): Promise<void>;
  /** SIGTERM to every role (all must exit 0), then the backends stop. */
  stop(): Promise<number[]>;
}

function waitForBanner(child: ChildProcess, name: string, output: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within ${STARTUP_MS} ms:\n${output()}`)),
      STARTUP_MS,
    );
    const check = (): void => {
      const text = output();
      if (/metrics and health\s+http:\/\/\S+:\d+\/metrics/.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    };
    child.stderr?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${String(code)} while starting:\n${output()}`));
    });
  });
}

/** Starts the backends and the roles: two edges, two routers, presence and archive. */
export async function startLocalCluster(): Promise<LocalCluster> {
  const dataDir = await mkdtemp(join(tmpdir(), 'starling-cluster-'));
  let postgres: RunningPostgres | undefined;
  let redis: RunningRedis | undefined;
  let kafka: RunningKafka | undefined;
  const processes: RoleProcess[] = [];
  // Every child from the moment it is spawned, so a failed start kills those still starting too.
  const children: { child: ChildProcess; exited: Promise<number | null> }[] = [];
  const stopBackends = async (): Promise<void> => {
    await Promise.all([postgres?.stop(), redis?.stop(), kafka?.stop()]);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    [postgres, redis, kafka] = await Promise.all([
      startPostgres(),
      startRedis(),
      startKafka({ partitions: 8 }),
    ]);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      STARLING_DOMAIN: 'localhost',
      STARLING_LISTEN_ADDRESS: '127.0.0.1',
      STARLING_C2S_PORT: '0',
      STARLING_DIRECT_TLS_PORT: '0',
      STARLING_HTTP_PORT: '0',
      STARLING_METRICS_PORT: '0',
      STARLING_DELIVERY_LISTEN: '127.0.0.1:0',
      STARLING_DATA_DIR: dataDir,
      STARLING_KAFKA_BROKERS: kafka.brokers.join(','),
      STARLING_REDIS_URL: `redis://${redis.host}:${redis.port}`,
      STARLING_POSTGRES_URL: postgres.url,
      STARLING_LOG_LEVEL: process.env.STARLING_TEST_LOG ?? 'warn',
    };
    const roles: [string, RoleName][] = [
      ['router-1', 'router'],
      ['router-2', 'router'],
      ['presence-1', 'presence'],
      ['archive-1', 'archive'],
      ['edge-1', 'edge'],
      ['edge-2', 'edge'],
    ];
    const started = await Promise.all(
      roles.map(async ([name, role]) => {
        const child = spawn(process.execPath, [BIN, role], {
          env: { ...env, STARLING_NODE_ID: name },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let text = '';
        child.stderr.on('data', (d: Buffer) => (text += d.toString()));
        child.stdout.on('data', (d: Buffer) => (text += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
        children.push({ child, exited });
        const output = (): string => text;
        const banner = await waitForBanner(child, name, output);
        const opsPort = Number(/metrics and health\s+http:\/\/\S+:(\d+)\//.exec(banner)?.[1]);
        const port = (label: string): number =>
          Number(new RegExp(`${label}\\s+127\\.0\\.0\\.1:(\\d+)`).exec(banner)?.[1]);
        const http = Number(/ws:\/\/127\.0\.0\.1:(\d+)\//.exec(banner)?.[1]);
        const endpoint: ClientEndpoint | undefined =
          role === 'edge'
            ? {
                host: '127.0.0.1',
                domain: 'localhost',
                ports: { c2s: port('\\(STARTTLS\\)'), directTls: port('\\(TLS\\)'), http },
              }
            : undefined;
        const running: RoleProcess = {
          name,
          role,
          child,
          opsPort,
          output,
          exited,
          ...(endpoint ? { endpoint } : {}),
        };
        processes.push(running);
        return running;
      }),
    );
    const edges = started.flatMap((p) => (p.endpoint ? [p.endpoint] : []));
    const pgUrl = postgres.url;
    await settleGroups(kafka.brokers, { router: 2, presence: 1, archive: 1 });
    await warmUp(pgUrl, edges);
    return {
      processes: started,
      edges,
      redisPort: redis.port,
      async addUser(username, password) {
        const store = await openPostgresStore(pgUrl);
        try {
          await store.accounts.create({
            username,
            scram: await deriveAllScramKeys(password, 4096),
            createdAt: Date.now(),
          });
        } finally {
          await store.close();
        }
      },
      async stop() {
        // Edges first, so their session ends reach presence while it still runs.
        const order = [...started].sort((a, b) => Number(b.role === 'edge') - Number(a.role === 'edge'));
        const codes: number[] = [];
        for (const proc of order) {
          proc.child.kill('SIGTERM');
          codes.push((await proc.exited) ?? -1);
        }
        await stopBackends();
        return codes;
      },
    };
  } catch (err) {
    for (const { child } of children) child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await stopBackends();
    throw err;
  }
}

const WARM_UP_MS = 90_000;

/**
 * Consumer groups settle (join, rebalance as later members join) after the processes say they started.
 * The cluster counts as up once, through every edge, a ping (router), the session's own presence
 * (presence) and an archive query (archive) are answered; each attempt is bounded, and so is the whole.
 */
async function warmUp(pgUrl: string, edges: readonly ClientEndpoint[]): Promise<void> {
  const store = await openPostgresStore(pgUrl);
  try {
    await store.accounts.create({
      username: 'warmup',
      scram: await deriveAllScramKeys('warmup', 4096),
      createdAt: 0,
    });
  } finally {
    await store.close();
  }
  const deadline = Date.now() + WARM_UP_MS;
  for (const [index, edge] of edges.entries()) {
    for (let attempt = 1; ; attempt++) {
      const client = await connect(edge, {
        username: 'warmup',
        password: 'warmup',
        resource: `edge${index}`,
      });
      try {
        await client.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", 5000);
        await client.send('<presence/>');
        await client.expect((el) => el.name === 'presence' && el.attrs.from === client.jid, 5000);
        await client.iq("<iq type='set'><query xmlns='urn:xmpp:mam:2'/></iq>", 5000);
        break;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`the cluster did not settle after ${attempt} attempts: ${String(err)}`);
      } finally {
        await client.stop();
      }
    }
  }
}

/**
 * Waits until every consumer group is Stable with the expected members, each holding partitions: a
 * consumer that restarted while the coordinator was loading leaves a member behind until its session
 * times out, and the partitions assigned to it stall until then.
 */
async function settleGroups(
  brokers: readonly string[],
  expected: Readonly<Record<string, number>>,
): Promise<void> {
  const admin = new Kafka({
    clientId: 'starling-test-settle',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const deadline = Date.now() + WARM_UP_MS;
    for (;;) {
      const { groups } = await admin.describeGroups(Object.keys(expected));
      const settled = groups.every(
        (group) =>
          group.state === 'Stable' &&
          group.members.length === expected[group.groupId] &&
          group.members.every((member) => member.memberAssignment.length > 0),
      );
      if (settled) return;
      if (Date.now() > deadline) {
        const states = groups.map((g) => `${g.groupId}: ${g.state}, ${g.members.length} members`).join('; ');
        throw new Error(`consumer groups did not settle: ${states}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await admin.disconnect();
  }
}
