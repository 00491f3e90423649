// Local infrastructure: a Starling cluster on one machine without containers (real Kafka, Redis and
// PostgreSQL; two edges, two routers, presence and archive, each its own process), for `npm run cluster`
// and the tests of the cluster shape.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { GROUP_ARCHIVE, GROUP_PRESENCE, GROUP_ROUTER, loadConfig, type Config } from '@starling/core';
import { loadTlsCredentials } from '@starling/all-in-one';
import { openPostgresStore } from '@starling/store';
import { deriveAllScramKeys } from '@starling/xmpp';
import { connect, type ClientEndpoint } from '../../test/harness/client.ts';
import { startKafka, type KafkaJvm, type RunningKafka } from './kafka.ts';
import { endWithThisProcess, onProcessEnd } from './process-end.ts';
import { startPostgres, type RunningPostgres } from './postgres.ts';
import { startRedis, type RunningRedis } from './redis.ts';

const BIN = new URL('../../bin/starling.js', import.meta.url).pathname;
const STARTUP_MS = 90_000;
const WARM_UP_MS = 90_000;
/** A role that ignores SIGTERM this long is killed: a stop must end. */
const STOP_MS = 30_000;

export type RoleName = 'edge' | 'router' | 'presence' | 'archive';

/** The roles of a local cluster, in start order; edge-<i> listens on the configured client ports plus i. */
export const LOCAL_ROLES: readonly (readonly [string, RoleName])[] = [
  ['router-1', 'router'],
  ['router-2', 'router'],
  ['presence-1', 'presence'],
  ['archive-1', 'archive'],
  ['edge-1', 'edge'],
  ['edge-2', 'edge'],
];

export interface RoleProcess {
  readonly name: string;
  readonly role: RoleName;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Client ports of an edge. */
  readonly endpoint?: ClientEndpoint;
  readonly opsPort: number;
  /** Everything the process wrote: the banner, and its JSON log lines at the configured level or above. */
  output(): string;
  /** Resolves with the exit code once the process ended. */
  readonly exited: Promise<number | null>;
}

/** Where the roles find Kafka, Redis and PostgreSQL. */
export interface BackendAddresses {
  readonly kafkaBrokers: readonly string[];
  /** redis://host:port */
  readonly redisUrl: string;
  readonly postgresUrl: string;
}

/** Backends started for a cluster, with the process ids of their servers. */
export interface LocalBackends extends BackendAddresses {
  readonly pids: { readonly kafka: number; readonly redis: number; readonly postgres: number };
  stop(): Promise<void>;
}

export interface LocalClusterOptions {
  /** Backends to run on, left running at stop; by default fresh ones are started and stopped with the cluster. */
  readonly backends?: BackendAddresses;
  /**
   * Settings for every role, as STARLING_* environment variables over this process's environment (which the
   * roles inherit). Client ports (STARLING_C2S_PORT, STARLING_DIRECT_TLS_PORT, STARLING_HTTP_PORT) and
   * STARLING_METRICS_PORT are bases: edge i gets the client ports plus i, the k-th role the metrics port
   * plus k; 0 gives every process ephemeral ports.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** A YAML configuration file for every role (`starling --config`); the environment wins over it. */
  readonly configFile?: string;
  /** Where the roles keep their data (the generated certificate); by default a temporary directory removed at stop. */
  readonly dataDir?: string;
  /** How the JVM of a Kafka broker started here runs (see {@link KafkaJvm}); `test` by default. */
  readonly kafkaJvm?: KafkaJvm;
  /** Extra `node` options of every role process, before the `starling` script. */
  readonly nodeOptions?: readonly string[];
  /** Sees everything a role writes, as it comes; the cluster keeps it for `output()` as well. */
  readonly onOutput?: (name: string, text: string) => void;
}

export interface LocalCluster {
  readonly config: Config;
  readonly processes: readonly RoleProcess[];
  readonly edges: readonly ClientEndpoint[];
  readonly backends: BackendAddresses;
  /** The backends this cluster started; undefined when they were given. */
  readonly ownBackends: LocalBackends | undefined;
  /** The edges' certificate (PEM), to pin in raw TLS clients. */
  readonly cert: string;
  readonly dataDir: string;
  /** Creates an account in PostgreSQL the way `starling user add` does. */
  addUser(username: string, password: string): Promise<void>;
  /**
   * SIGTERM to the edges, then to the other roles, then stops the backends it started; resolves with the
   * roles' exit codes in the order of `processes`.
   */
  stop(): Promise<number[]>;
}

/**
 * Settings for a cluster under test: every port ephemeral, and logs at STARLING_TEST_LOG (default info)
 * so a failing test can show them.
 */
export function testRoleEnv(): Record<string, string> {
  return {
    STARLING_C2S_PORT: '0',
    STARLING_DIRECT_TLS_PORT: '0',
    STARLING_HTTP_PORT: '0',
    STARLING_METRICS_PORT: '0',
    STARLING_LOG_LEVEL: process.env.STARLING_TEST_LOG ?? 'info',
  };
}

/** Starts Kafka, Redis and PostgreSQL on free loopback ports; `kafkaJvm` as {@link startKafka} takes it. */
export async function startBackends(options: { readonly kafkaJvm?: KafkaJvm } = {}): Promise<LocalBackends> {
  const started = await Promise.allSettled([
    startPostgres(),
    startRedis(),
    startKafka({ partitions: 8, ...(options.kafkaJvm === undefined ? {} : { jvm: options.kafkaJvm }) }),
  ]);
  const [pg, redis, kafka] = started;
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.flatMap((s) => (s.status === 'fulfilled' ? [s.value.stop()] : [])));
  };
  if (pg.status === 'rejected' || redis.status === 'rejected' || kafka.status === 'rejected') {
    await stopAll();
    const failed = started.find((s) => s.status === 'rejected');
    throw (failed as PromiseRejectedResult).reason;
  }
  const postgres: RunningPostgres = pg.value;
  const redisServer: RunningRedis = redis.value;
  const broker: RunningKafka = kafka.value;
  return {
    kafkaBrokers: broker.brokers,
    redisUrl: `redis://${redisServer.host}:${redisServer.port}`,
    postgresUrl: postgres.url,
    pids: { kafka: broker.pid, redis: redisServer.pids[0] ?? -1, postgres: postgres.pid },
    stop: stopAll,
  };
}

function portSetting(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  return value === undefined || value === '' ? fallback : Number(value);
}

const EDGES = LOCAL_ROLES.filter(([, role]) => role === 'edge').length;

/**
 * The first port of each kind; edge i adds i to the client ports, the k-th role k to the metrics port. The
 * direct TLS default (5223) is the second edge's c2s port, so unless set it moves past the c2s ports.
 */
function basePorts(
  env: NodeJS.ProcessEnv,
  config: Config,
): { c2s: number; directTls: number; http: number; metrics: number } {
  const c2s = portSetting(env, 'STARLING_C2S_PORT', config.listen.c2sPort);
  let directTls = portSetting(env, 'STARLING_DIRECT_TLS_PORT', config.listen.directTlsPort);
  const directTlsGiven = env.STARLING_DIRECT_TLS_PORT !== undefined && env.STARLING_DIRECT_TLS_PORT !== '';
  if (!directTlsGiven && c2s !== 0 && directTls >= c2s && directTls < c2s + EDGES) directTls = c2s + EDGES;
  const base = {
    c2s,
    directTls,
    http: portSetting(env, 'STARLING_HTTP_PORT', config.listen.httpPort),
    metrics: portSetting(env, 'STARLING_METRICS_PORT', config.cluster.metricsPort),
  };
  const taken = new Map<number, string>();
  const claim = (port: number, what: string): void => {
    if (port === 0) return;
    const other = taken.get(port);
    if (other !== undefined) {
      throw new Error(
        `port ${port} would serve both ${other} and ${what}; space out STARLING_C2S_PORT, ` +
          'STARLING_DIRECT_TLS_PORT, STARLING_HTTP_PORT and STARLING_METRICS_PORT',
      );
    }
    taken.set(port, what);
  };
  for (let i = 0; i < EDGES; i++) {
    claim(base.c2s === 0 ? 0 : base.c2s + i, `edge ${i} c2s`);
    claim(base.directTls === 0 ? 0 : base.directTls + i, `edge ${i} direct TLS`);
    claim(base.http === 0 ? 0 : base.http + i, `edge ${i} HTTP`);
  }
  LOCAL_ROLES.forEach(([name], k) => claim(base.metrics === 0 ? 0 : base.metrics + k, `${name} metrics`));
  return base;
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

async function stopRole(proc: RoleProcess): Promise<number> {
  proc.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    proc.exited,
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_MS))),
  ]);
  clearTimeout(timer);
  if (code !== 'timeout') return code ?? -1;
  proc.child.kill('SIGKILL');
  await proc.exited;
  return -1;
}

/**
 * Starts two edges, two routers, presence and archive as `starling <role>` processes on the given backends
 * (or fresh ones), and resolves once every consumer group is settled and a session on each edge gets
 * answers from router, presence and archive.
 */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'starling-cluster-')));
  const ownDataDir = options.dataDir === undefined;
  let ownBackends: LocalBackends | undefined;
  // Every child from the moment it is spawned, so a failed start kills those still starting too.
  const children: { child: ChildProcess; exited: Promise<number | null> }[] = [];
  const release = async (): Promise<void> => {
    await ownBackends?.stop();
    if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const backends =
      options.backends ??
      (ownBackends = await startBackends(
        options.kafkaJvm === undefined ? {} : { kafkaJvm: options.kafkaJvm },
      ));
    // Test clients of this process may have turned certificate checks off; the roles keep them on.
    const { NODE_TLS_REJECT_UNAUTHORIZED: _ignored, ...inherited } = process.env;
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      STARLING_DATA_DIR: dataDir,
      STARLING_LOG_LEVEL: 'warn',
      ...options.env,
      STARLING_DELIVERY_LISTEN: '127.0.0.1:0',
      STARLING_KAFKA_BROKERS: backends.kafkaBrokers.join(','),
      STARLING_REDIS_URL: backends.redisUrl,
      STARLING_POSTGRES_URL: backends.postgresUrl,
    };
    const config = loadConfig(options.configFile, env);
    const base = basePorts(env, config);
    const offset = (port: number, by: number): string => String(port === 0 ? 0 : port + by);
    // Made once here: two edges generating their own at the same moment could end up with different ones.
    const { cert } = await loadTlsCredentials(config);
    const address = config.listen.address;
    let edgeIndex = 0;
    const started = await Promise.all(
      LOCAL_ROLES.map(async ([name, role], index) => {
        const roleEnv: NodeJS.ProcessEnv = {
          ...env,
          STARLING_NODE_ID: name,
          STARLING_METRICS_PORT: offset(base.metrics, index),
        };
        if (role === 'edge') {
          const i = edgeIndex++;
          roleEnv.STARLING_C2S_PORT = offset(base.c2s, i);
          roleEnv.STARLING_DIRECT_TLS_PORT = offset(base.directTls, i);
          roleEnv.STARLING_HTTP_PORT = offset(base.http, i);
        }
        const args = [
          ...(options.nodeOptions ?? []),
          BIN,
          role,
          ...(options.configFile === undefined ? [] : ['--config', options.configFile]),
        ];
        const child = spawn(process.execPath, args, {
          env: roleEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
          // Its own process group: Ctrl-C reaches only the program that started it, which stops edges first.
          detached: true,
        });
        let text = '';
        const take = (d: Buffer): void => {
          const chunk = d.toString();
          text += chunk;
          options.onOutput?.(name, chunk);
        };
        child.stderr.on('data', take);
        child.stdout.on('data', take);
        const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
        children.push({ child, exited });
        // In its own process group it would outlive this process; it must not, however this one ends.
        const forget = onProcessEnd(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        });
        void exited.then(forget);
        endWithThisProcess(child, ownDataDir ? { dir: dataDir } : {});
        const output = (): string => text;
        const banner = await waitForBanner(child, name, output);
        const opsPort = Number(/metrics and health\s+http:\/\/\S+:(\d+)\//.exec(banner)?.[1]);
        const port = (label: string): number =>
          Number(new RegExp(`${label}\\s+\\S+:(\\d+)`).exec(banner)?.[1]);
        const http = Number(/ws:\/\/\S+:(\d+)\//.exec(banner)?.[1]);
        const endpoint: ClientEndpoint | undefined =
          role === 'edge'
            ? {
                host: address,
                domain: config.domain,
                ports: { c2s: port('\\(STARTTLS\\)'), directTls: port('\\(TLS\\)'), http },
              }
            : undefined;
        const running: RoleProcess = {
          name,
          role,
          child,
          pid: child.pid ?? -1,
          opsPort,
          output,
          exited,
          ...(endpoint ? { endpoint } : {}),
        };
        return running;
      }),
    );
    const edges = started.flatMap((p) => (p.endpoint ? [p.endpoint] : []));
    const addUser = async (username: string, password: string): Promise<void> => {
      const store = await openPostgresStore(backends.postgresUrl);
      try {
        const scram = await deriveAllScramKeys(password, config.auth.scramIterations);
        if (!(await store.accounts.create({ username, scram, createdAt: Date.now() }))) {
          throw new Error(`user ${username} exists`);
        }
      } finally {
        await store.close();
      }
    };
    await settleGroups(backends.kafkaBrokers, {
      [GROUP_ROUTER]: 2,
      [GROUP_PRESENCE]: 1,
      [GROUP_ARCHIVE]: 1,
    });
    await warmUp(backends.postgresUrl, edges, addUser);
    let stopping: Promise<number[]> | undefined;
    return {
      config,
      processes: started,
      edges,
      backends,
      ownBackends,
      cert,
      dataDir,
      addUser,
      stop() {
        stopping ??= (async () => {
          // Edges first, so their session ends reach presence while it still runs.
          const codes = new Map<RoleProcess, number>();
          for (const edgesNow of [true, false]) {
            const batch = started.filter((p) => (p.role === 'edge') === edgesNow);
            const batchCodes = await Promise.all(batch.map(stopRole));
            batch.forEach((p, i) => codes.set(p, batchCodes[i] ?? -1));
          }
          await release();
          return started.map((p) => codes.get(p) ?? -1);
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const { child } of children) child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await release();
    throw err;
  }
}

/**
 * Consumer groups settle (join, rebalance as later members join) after the processes say they started.
 * The cluster counts as up once, through every edge, a ping (router), the session's own presence
 * (presence) and an archive query (archive) are answered; each attempt is bounded, and so is the whole.
 * The account it uses is deleted afterwards.
 */
async function warmUp(
  pgUrl: string,
  edges: readonly ClientEndpoint[],
  addUser: (username: string, password: string) => Promise<void>,
): Promise<void> {
  const username = `warmup-${process.pid}-${Date.now()}`;
  await addUser(username, username);
  try {
    const deadline = Date.now() + WARM_UP_MS;
    for (const [index, edge] of edges.entries()) {
      for (let attempt = 1; ; attempt++) {
        const client = await connect(edge, { username, password: username, resource: `edge${index}` });
        try {
          await client.iq(`<iq type='get' to='${edge.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`, 5000);
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
  } finally {
    const store = await openPostgresStore(pgUrl);
    try {
      await store.accounts.delete(username);
    } finally {
      await store.close();
    }
  }
}

/**
 * Waits until every consumer group is Stable with the expected members, each holding partitions: a
 * consumer that restarted while the coordinator was loading leaves a member behind until its session
 * times out, and the partitions assigned to it stall until then.
 */
export async function settleGroups(
  brokers: readonly string[],
  expected: Readonly<Record<string, number>>,
  timeoutMs = WARM_UP_MS,
): Promise<void> {
  const admin = new Kafka({
    clientId: 'starling-local-settle',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
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
