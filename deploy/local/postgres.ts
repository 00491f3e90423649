// Local infrastructure: a throwaway PostgreSQL server (initdb + postgres, loopback only) for tests and `npm run cluster`.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import { access, chown, constants, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.ts';
import { endWithThisProcess, onProcessEnd, processRunning } from './process-end.ts';

/** A PostgreSQL server started by `startPostgres`, with a database `starling` and trust auth on loopback. */
export interface RunningPostgres {
  /** Connection URL of the `starling` database, as the superuser `postgres`. */
  readonly url: string;
  /** PID of the postmaster. */
  readonly pid: number;
  /** Shuts the server down, waits for it to exit and removes its data; safe to call twice. */
  stop(): Promise<void>;
}

/** The two server programs a throwaway cluster needs. */
export interface PostgresBinaries {
  readonly initdb: string;
  readonly postgres: string;
}

/** Debian and Ubuntu keep each major version's server programs here, off PATH. */
const DEBIAN_ROOT = '/usr/lib/postgresql';
const INSTALL_COMMAND = 'sudo apt-get update && sudo apt-get install -y postgresql';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const KILL_TIMEOUT_MS = 5_000;
const INITDB_TIMEOUT_MS = 60_000;
const INSTALL_TIMEOUT_MS = 15 * 60_000;
/** Another process can take the probed free port before the server binds it; that alone is worth a new port. */
const BIND_ATTEMPTS = 3;

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function binariesIn(dir: string): Promise<PostgresBinaries | undefined> {
  const found = { initdb: join(dir, 'initdb'), postgres: join(dir, 'postgres') };
  return (await executable(found.initdb)) && (await executable(found.postgres)) ? found : undefined;
}

/**
 * Finds `initdb` and `postgres`: the newest major version under Debian's `/usr/lib/postgresql/<major>/bin`
 * first, then the directories of `PATH`. Undefined when neither has both.
 */
export async function findPostgresBinaries(
  env: NodeJS.ProcessEnv = process.env,
  debianRoot = DEBIAN_ROOT,
): Promise<PostgresBinaries | undefined> {
  let versions: string[] = [];
  try {
    versions = (await readdir(debianRoot)).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    // Not a Debian-style install.
  }
  versions.sort((a, b) => Number(b) - Number(a));
  const dirs = [
    ...versions.map((v) => join(debianRoot, v, 'bin')),
    ...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''),
  ];
  for (const dir of dirs) {
    const found = await binariesIn(dir);
    if (found) return found;
  }
  return undefined;
}

function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeout: number; uid?: number; gid?: number; cwd?: string },
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...options, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`.trim()));
      } else {
        resolve(stdout);
      }
    });
  });
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

let installing: Promise<void> | undefined;

/** Installs Debian's `postgresql` package once per process (several test files may ask at once). */
function installPostgres(): Promise<void> {
  installing ??= (async () => {
    // The package would otherwise create and start a system cluster on port 5432: a daemon no test stops.
    await mkdir('/etc/postgresql-common/createcluster.d', { recursive: true });
    await writeFile(
      '/etc/postgresql-common/createcluster.d/no-main-cluster.conf',
      'create_main_cluster = false\n',
    );
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    // Test files in other processes may install at the same moment: wait for dpkg's lock instead of failing.
    const lock = ['-o', 'DPkg::Lock::Timeout=600'];
    await run('apt-get', [...lock, 'update'], { env, timeout: INSTALL_TIMEOUT_MS });
    await run('apt-get', [...lock, 'install', '-y', '--no-install-recommends', 'postgresql'], {
      env,
      timeout: INSTALL_TIMEOUT_MS,
    });
  })();
  return installing;
}

async function requireBinaries(): Promise<PostgresBinaries> {
  const found = await findPostgresBinaries();
  if (found) return found;
  if (!isRoot()) {
    throw new Error(
      `PostgreSQL server programs (initdb, postgres) not found under ${DEBIAN_ROOT}/<major>/bin or on PATH. ` +
        `Install them with: ${INSTALL_COMMAND}`,
    );
  }
  try {
    await installPostgres();
  } catch (err) {
    throw new Error(`installing PostgreSQL failed; run: ${INSTALL_COMMAND}`, { cause: err });
  }
  const installed = await findPostgresBinaries();
  if (!installed) {
    throw new Error(
      `apt-get installed postgresql but initdb/postgres are still missing; run: ${INSTALL_COMMAND}`,
    );
  }
  return installed;
}

/** The account the server runs as: PostgreSQL refuses to run as root, so root hands it to `postgres`. */
async function serverAccount(): Promise<{ uid: number; gid: number } | undefined> {
  if (!isRoot()) return undefined;
  try {
    const uid = Number((await run('id', ['-u', 'postgres'], { timeout: 5_000 })).trim());
    const gid = Number((await run('id', ['-g', 'postgres'], { timeout: 5_000 })).trim());
    return { uid, gid };
  } catch (err) {
    throw new Error(
      'PostgreSQL cannot run as root and there is no postgres user to run it as; run: ' +
        'useradd --system --user-group --home-dir /var/lib/postgresql postgres',
      { cause: err },
    );
  }
}

/** Last lines of the server's output, for error messages. */
class LogTail {
  #text = '';

  append(chunk: string): void {
    this.#text = (this.#text + chunk).slice(-8_000);
  }

  get text(): string {
    return this.#text.split('\n').slice(-40).join('\n');
  }
}

/**
 * Servers of this process not yet stopped: temporary directory to the postmaster's PID while it runs
 * (forgotten once it exited, so that a reused PID is never signalled). The exit and signal handlers below
 * clean up whatever is left here.
 */
const started = new Map<string, { pid: number | undefined }>();

/**
 * Stops every server still running, synchronously, as the process is about to end. An immediate shutdown
 * (SIGQUIT) lets the postmaster end its backends and release its shared memory itself; SIGKILL would leave
 * both behind. Only a postmaster that ignores it for a few seconds is killed.
 */
function killAllNow(): void {
  const pids = [...started.values()].flatMap((s) => (s.pid === undefined ? [] : [s.pid]));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // Already gone.
    }
  }
  const deadline = Date.now() + KILL_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let waiting = pids.filter(processRunning);
  while (waiting.length > 0 && Date.now() < deadline) {
    Atomics.wait(pause, 0, 0, 10);
    waiting = waiting.filter(processRunning);
  }
  for (const pid of waiting) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone after all.
    }
  }
  for (const dir of started.keys()) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort while the process ends.
    }
  }
  started.clear();
}

let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  onProcessEnd(killAllNow);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Postmaster {
  readonly child: ChildProcess & { readonly pid: number };
  readonly port: number;
}

/** Starts the postmaster and resolves once it logs that it accepts connections. */
async function launch(
  binaries: PostgresBinaries,
  dir: string,
  account: { uid: number; gid: number } | undefined,
  env: NodeJS.ProcessEnv,
  tail: LogTail,
): Promise<Postmaster | 'port-taken'> {
  const port = await freePort();
  const args = [
    '-D',
    join(dir, 'data'),
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${dir}`,
    // Durability is what the store's tests are about: keep every flush a real one.
    '-c',
    'fsync=on',
    '-c',
    'synchronous_commit=on',
    '-c',
    'full_page_writes=on',
    '-c',
    'shared_buffers=16MB',
    '-c',
    'max_connections=100',
    '-c',
    'huge_pages=off',
    '-c',
    'logging_collector=off',
  ];
  const child = spawn(binaries.postgres, args, {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: Ctrl-C on a terminal reaches only the program that started it.
    detached: true,
    ...(account ?? {}),
  });
  const { pid } = child;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`could not start ${binaries.postgres}: ${err.message}`);
  }
  // Should this process die where its exit handlers cannot run (SIGKILL): an immediate shutdown, as
  // killAllNow does, and the directory removed.
  endWithThisProcess(child, { signal: 'SIGQUIT', graceMs: KILL_TIMEOUT_MS, dir });
  const server = started.get(dir);
  if (server) server.pid = pid;
  const log = createWriteStream(join(dir, 'postgres.log'), { flags: 'a' });
  let ready!: () => void;
  const readyLogged = new Promise<void>((resolve) => (ready = resolve));
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      log.write(chunk);
      tail.append(chunk);
      if (tail.text.includes('ready to accept connections')) ready();
    });
  }
  child.once('exit', () => {
    if (server?.pid === pid) server.pid = undefined;
    log.end();
  });

  const outcome = await within(
    Promise.race([readyLogged.then(() => 'ready' as const), exited(child).then(() => 'exited' as const)]),
    READY_TIMEOUT_MS,
  );
  if (outcome === 'ready') return { child: child as ChildProcess & { readonly pid: number }, port };
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await within(exited(child), KILL_TIMEOUT_MS);
    throw new Error(`PostgreSQL did not accept connections within ${READY_TIMEOUT_MS} ms:\n${tail.text}`);
  }
  if (/Address already in use/.test(tail.text)) return 'port-taken';
  throw new Error(`PostgreSQL exited during start-up (code ${child.exitCode}):\n${tail.text}`);
}

/** Stops the postmaster: fast shutdown (clients cut off, checkpoint), SIGKILL if it hangs. */
async function shutDown(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // Waiting for exit needs the handles that start-up let go of.
  child.ref();
  for (const stream of [child.stdout, child.stderr]) (stream as Socket | null)?.ref();
  // SIGTERM would be a smart shutdown, which waits for every client (a leaked pool) to leave on its own.
  child.kill('SIGINT');
  if ((await within(exited(child), STOP_TIMEOUT_MS)) !== 'timeout') return;
  child.kill('SIGKILL');
  if ((await within(exited(child), KILL_TIMEOUT_MS)) === 'timeout') {
    throw new Error(`PostgreSQL (pid ${child.pid}) did not exit after SIGKILL`);
  }
}

async function createStarlingDatabase(port: number): Promise<void> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  try {
    await client.query('CREATE DATABASE starling');
  } finally {
    await client.end();
  }
}

/**
 * Starts a private PostgreSQL server: a fresh cluster in a temporary directory, listening on a free port
 * of 127.0.0.1 (and a unix socket in that directory) with trust auth, fsync on, and a `starling` database.
 * Installs Debian's `postgresql` package when the programs are missing and the process is root; otherwise
 * throws naming the command to run. The server is killed if this process exits without stopping it.
 */
export async function startPostgres(): Promise<RunningPostgres> {
  const binaries = await requireBinaries();
  const account = await serverAccount();
  const dir = await mkdtemp(join(tmpdir(), 'starling-pg-'));
  started.set(dir, { pid: undefined });
  installExitHandlers();
  // English messages, whatever the machine's locale: start-up is detected by a log line.
  // PG* variables of the developer's shell (PGDATA, PGPORT…) would steer initdb and postgres elsewhere.
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PG'))),
    LC_ALL: 'C',
    LANG: 'C',
  };
  let postmaster: Postmaster | undefined;
  try {
    if (account) await chown(dir, account.uid, account.gid);
    await run(
      binaries.initdb,
      [
        '-D',
        join(dir, 'data'),
        '--username=postgres',
        '--auth=trust',
        '--encoding=UTF8',
        '--no-locale',
        // The cluster lives only as long as the test; the server itself still fsyncs every commit.
        '--no-sync',
      ],
      { env, cwd: dir, timeout: INITDB_TIMEOUT_MS, ...(account ?? {}) },
    );
    const hba = join(dir, 'data', 'pg_hba.conf');
    await writeFile(hba, 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    if (account) await chown(hba, account.uid, account.gid);

    for (let attempt = 1; postmaster === undefined; attempt++) {
      const tail = new LogTail();
      const launched = await launch(binaries, dir, account, env, tail);
      if (launched !== 'port-taken') postmaster = launched;
      else if (attempt === BIND_ATTEMPTS) {
        throw new Error(`PostgreSQL found its port taken ${BIND_ATTEMPTS} times:\n${tail.text}`);
      }
    }
    // A forgotten stop() must not keep the test process alive; the exit handler kills the server then.
    postmaster.child.unref();
    for (const stream of [postmaster.child.stdout, postmaster.child.stderr])
      (stream as Socket | null)?.unref();
    await createStarlingDatabase(postmaster.port);
  } catch (err) {
    if (postmaster) await shutDown(postmaster.child).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    started.delete(dir);
    throw err;
  }

  const { child, port } = postmaster;
  let stopping: Promise<void> | undefined;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/starling`,
    pid: child.pid,
    stop() {
      stopping ??= (async () => {
        await shutDown(child);
        await rm(dir, { recursive: true, force: true });
        started.delete(dir);
      })();
      return stopping;
    },
  };
}

/** Creates database `name` on the server of `url` and returns the URL of that database. */
export async function createDatabase(url: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  const target = new URL(url);
  target.pathname = `/${encodeURIComponent(name)}`;
  return target.toString();
}
