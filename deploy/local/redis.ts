// Local infrastructure: real redis-server processes (one node, or a Redis Cluster) on loopback, for tests and drills.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.ts';
import { endWithThisProcess, onProcessEnd } from './process-end.ts';

const HOST = '127.0.0.1';
/** Bounds every wait here: a healthy redis-server starts in milliseconds. */
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const CLUSTER_TIMEOUT_MS = 30_000;
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const INSTALL_COMMAND = 'apt-get update && apt-get install -y redis-server redis-tools';

/** One redis-server without persistence, bound to 127.0.0.1. */
export interface RunningRedis {
  readonly host: string;
  readonly port: number;
  /** The process ids of the running server (one; it changes on `restartEmpty`). */
  readonly pids: readonly number[];
  /** Kills the server and starts a fresh one on the same port with no data (a crash without persistence). */
  restartEmpty(): Promise<void>;
  stop(): Promise<void>;
}

/** A Redis Cluster of masters without replicas, every slot assigned, bound to 127.0.0.1. */
export interface RunningRedisCluster {
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
  readonly pids: readonly number[];
  /** Kills every node and creates a new, empty cluster on the same ports (new node ids, new slot map). */
  restartEmpty(): Promise<void>;
  stop(): Promise<void>;
}

interface RedisProcess {
  readonly port: number;
  readonly dir: string;
  readonly child: ChildProcess;
}

/** Every node this process started and has not stopped yet, killed on exit if a test forgot to. */
const live = new Set<RedisProcess>();
/** Temporary directories not removed yet. */
const roots = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const node of live) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
    }
    live.clear();
    for (const root of roots) rmSync(root, { recursive: true, force: true });
    roots.clear();
  };
  onProcessEnd(killAll);
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function lookup(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''),
    '/usr/bin',
    '/usr/local/bin',
  ];
  return dirs.map((dir) => join(dir, name)).find(executable);
}

function run(
  file: string,
  args: readonly string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8', env }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

let binaries: Promise<{ server: string; cli: string }> | undefined;

/** Finds redis-server and redis-cli, installing them with apt-get when missing and allowed to. */
function redisBinaries(): Promise<{ server: string; cli: string }> {
  binaries ??= (async () => {
    let server = lookup('redis-server');
    let cli = lookup('redis-cli');
    if (server === undefined || cli === undefined) {
      if (process.getuid?.() !== 0 || lookup('apt-get') === undefined) {
        throw new Error(
          `redis-server and redis-cli are needed; install them with: sudo sh -c '${INSTALL_COMMAND}'`,
        );
      }
      try {
        await run('sh', ['-c', INSTALL_COMMAND], INSTALL_TIMEOUT_MS, {
          ...process.env,
          DEBIAN_FRONTEND: 'noninteractive',
        });
      } catch (err) {
        throw new Error(`installing Redis failed; run: ${INSTALL_COMMAND}\n${(err as Error).message}`);
      }
      server = lookup('redis-server');
      cli = lookup('redis-cli');
      if (server === undefined || cli === undefined) {
        throw new Error(`redis-server or redis-cli still missing after: ${INSTALL_COMMAND}`);
      }
    }
    return { server, cli };
  })();
  return binaries;
}

class PortInUse extends Error {}

/**
 * Spawns redis-server in the foreground and resolves once it logged that it accepts connections. Should
 * this process die without stopping it, the server is killed and `root` removed.
 */
async function spawnNode(
  server: string,
  port: number,
  root: string,
  dir: string,
  args: readonly string[],
): Promise<ChildProcess> {
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    server,
    [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--daemonize',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...args,
    ],
    // Its own process group: Ctrl-C on a terminal reaches only the program that started it.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  endWithThisProcess(child, { dir: root });
  const log = createWriteStream(join(dir, 'redis.log'));
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  child.once('close', () => log.end());
  let seen = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`redis-server on port ${port} not ready after ${START_TIMEOUT_MS} ms:\n${seen}`));
      }, START_TIMEOUT_MS);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.off('close', onExit);
        child.off('error', done);
        if (err) reject(err);
        else resolve();
      };
      const onData = (chunk: Buffer): void => {
        seen += chunk.toString('utf8');
        if (seen.includes('Ready to accept connections')) done();
      };
      // 'close' rather than 'exit': by then everything the server printed has been read.
      const onExit = (): void => {
        const reason = `redis-server on port ${port} exited during start-up:\n${seen}`;
        done(/Address already in use/.test(seen) ? new PortInUse(reason) : new Error(reason));
      };
      child.stdout.on('data', onData);
      child.once('close', onExit);
      child.once('error', done);
    });
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  }
  // A test that forgets stop() must not hang the test process; the exit hook kills the server.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
  return child;
}

async function startNode(root: string, args: readonly string[], port?: number): Promise<RedisProcess> {
  const { server } = await redisBinaries();
  installExitHook();
  for (let attempt = 1; ; attempt++) {
    const chosen = port ?? (await freePort());
    const dir = join(root, `node-${chosen}`);
    try {
      const child = await spawnNode(server, chosen, root, dir, args);
      const node: RedisProcess = { port: chosen, dir, child };
      live.add(node);
      return node;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      if (!(err instanceof PortInUse) || port !== undefined || attempt >= 5) throw err;
    }
  }
}

async function stopNode(node: RedisProcess): Promise<void> {
  const { child } = node;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // The timer also keeps the event loop alive while the (unref'd) child is awaited.
    const within = async (ms: number): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
      try {
        return await Promise.race([exited.then(() => true), timeout]);
      } finally {
        clearTimeout(timer);
      }
    };
    child.kill('SIGTERM');
    if (!(await within(STOP_TIMEOUT_MS))) {
      child.kill('SIGKILL');
      if (!(await within(STOP_TIMEOUT_MS))) throw new Error(`redis-server pid ${child.pid} survived SIGKILL`);
    }
  }
  live.delete(node);
  await rm(node.dir, { recursive: true, force: true });
}

async function makeRoot(prefix: string): Promise<string> {
  installExitHook();
  const root = await mkdtemp(join(tmpdir(), prefix));
  roots.add(root);
  return root;
}

async function removeRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
  roots.delete(root);
}

function pidOf(node: RedisProcess): number {
  if (node.child.pid === undefined) throw new Error(`redis-server on port ${node.port} has no pid`);
  return node.child.pid;
}

/** Starts one redis-server on a free loopback port, data and log in a temporary directory. */
export async function startRedis(): Promise<RunningRedis> {
  const root = await makeRoot('starling-redis-');
  let node: RedisProcess;
  try {
    node = await startNode(root, []);
  } catch (err) {
    await removeRoot(root);
    throw err;
  }
  const { port } = node;
  return {
    host: HOST,
    port,
    get pids() {
      return [pidOf(node)];
    },
    async restartEmpty() {
      await stopNode(node);
      node = await startNode(root, [], port);
    },
    async stop() {
      await stopNode(node);
      await removeRoot(root);
    },
  };
}

const CLUSTER_ARGS = [
  '--cluster-enabled',
  'yes',
  '--cluster-config-file',
  'nodes.conf',
  // How long a node may be unreachable before the others mark it failed and stop serving (cluster_state:fail);
  // a fault drill that kills a node sees that this long after the kill.
  '--cluster-node-timeout',
  '3000',
];

async function clusterInfo(port: number): Promise<string> {
  const client = new Redis(port, HOST, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  try {
    await client.connect();
    return String(await client.call('CLUSTER', 'INFO'));
  } finally {
    client.disconnect();
  }
}

/** Joins the nodes into a cluster and waits until every node reports every slot served. */
async function formCluster(ports: readonly number[]): Promise<void> {
  const { cli } = await redisBinaries();
  await run(
    cli,
    ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    CLUSTER_TIMEOUT_MS,
  );
  // Gossip spreads the new configuration on its own schedule; nothing announces it, so ask each node.
  const deadline = Date.now() + CLUSTER_TIMEOUT_MS;
  for (const port of ports) {
    let info = '';
    while (!(info = await clusterInfo(port)).includes('cluster_state:ok')) {
      if (Date.now() > deadline)
        throw new Error(`cluster node ${port} not ok after ${CLUSTER_TIMEOUT_MS} ms:\n${info}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Starts `masters` cluster-enabled redis-servers on free loopback ports and creates a cluster of them. */
export async function startRedisCluster(masters = 3): Promise<RunningRedisCluster> {
  if (!Number.isInteger(masters) || masters < 3) throw new Error('Redis Cluster needs at least 3 masters');
  const root = await makeRoot('starling-redis-cluster-');
  let nodes: RedisProcess[] = [];
  const startAll = async (ports: readonly (number | undefined)[]): Promise<void> => {
    const started = await Promise.allSettled(ports.map((port) => startNode(root, CLUSTER_ARGS, port)));
    nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    await formCluster(nodes.map((n) => n.port));
  };
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map(stopNode));
  };
  try {
    await startAll(Array.from({ length: masters }, () => undefined));
  } catch (err) {
    await stopAll();
    await removeRoot(root);
    throw err;
  }
  return {
    get nodes() {
      return nodes.map((n) => ({ host: HOST, port: n.port }));
    },
    get pids() {
      return nodes.map(pidOf);
    },
    async restartEmpty() {
      const ports = nodes.map((n) => n.port);
      await stopAll();
      await startAll(ports);
    },
    async stop() {
      await stopAll();
      await removeRoot(root);
    },
  };
}
