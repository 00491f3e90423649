// A private ejabberd instance for side-by-side benchmarks with Starling: its own node, cookie, database and logs
// in a directory of ours, configured like Starling's defaults (no shapers, same SCRAM hashing cost).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { freePort } from '../../../deploy/local/free-port.ts';
import { descendants, isRunning, processTable, processTree } from '../proc.ts';
import { onceExited, waitForStream } from './process.ts';

export interface EjabberdOptions {
  /** A directory of ours for config, mnesia database and logs; kept across runs so registered users persist. */
  dir: string;
  domain: string;
  host: string;
  /** c2s offering STARTTLS without requiring it, so plain runs work. */
  c2sPort: number;
  /** c2s with direct TLS (XEP-0368). */
  directTlsPort: number;
  /** PEM certificate chain and key for `domain`. */
  cert: string;
  key: string;
  /** Pin to this CPU with one Erlang scheduler, to compare with a single-threaded Node server on one core. */
  cpu?: number;
  /** mod_mam archiving every message, as Starling does by default (on unless false; Debian's default config has it off). */
  archive?: boolean;
}

export interface RunningEjabberd {
  readonly name: string;
  /** The OS processes doing server work: beam.smp and its children (not the ejabberdctl shell waiting on it). */
  readonly pids: () => number[];
  /** Stops the node politely, then SIGKILLs whatever is left; resolves once no process remains. */
  stop(): Promise<void>;
}

const EJABBERDCTL = '/usr/sbin/ejabberdctl';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

interface Paths {
  readonly dir: string;
  readonly config: string;
  readonly ctlConfig: string;
  readonly inetrc: string;
  readonly pem: string;
  readonly spool: string;
  readonly logs: string;
  readonly console: string;
}

function pathsIn(dir: string): Paths {
  return {
    dir,
    config: join(dir, 'ejabberd.yml'),
    ctlConfig: join(dir, 'ejabberdctl.cfg'),
    inetrc: join(dir, 'inetrc'),
    pem: join(dir, 'tls.pem'),
    spool: join(dir, 'mnesia'),
    logs: join(dir, 'logs'),
    console: join(dir, 'logs', 'console.log'),
  };
}

/** Mnesia ties its schema to the node name, so the name must stay the same for a directory across runs. */
function nodeNameFor(dir: string): string {
  const digest = createHash('sha256').update(dir).digest('hex').slice(0, 10);
  return `ejabberd-bench-${digest}@localhost`;
}

/** JSON strings are valid YAML double-quoted scalars, which keeps paths and names safe to embed. */
const q = (value: string): string => JSON.stringify(value);

function ejabberdYaml(options: EjabberdOptions, paths: Paths): string {
  const listener = (port: number, tls: 'starttls' | 'direct'): string => `  -
    port: ${port}
    ip: ${q(options.host)}
    module: ejabberd_c2s
${tls === 'direct' ? '    tls: true' : '    starttls: true\n    starttls_required: false'}
    access: c2s
    shaper: none
    max_stanza_size: 262144
    max_fsm_queue: 1000000
    backlog: 511`;
  return `# Written by bench/src/servers/ejabberd.ts on every start; edits are lost.
hosts:
  - ${q(options.domain)}

loglevel: warning
# The instance lives only as long as a benchmark, so logs are never rotated under it.
log_rotate_count: 0
log_rotate_size: infinity

certfiles:
  - ${q(paths.pem)}
# The Debian package's TLS settings: TLS 1.2 and later, like Node's defaults in Starling.
c2s_ciphers: "HIGH:!aNULL:!eNULL:!3DES:@STRENGTH"
c2s_protocol_options:
  - no_sslv3
  - no_tlsv1
  - no_tlsv1_1
  - cipher_server_preference
  - no_compression

# Only c2s, only on the loopback: ejabberd's defaults add s2s, HTTP, STUN and MQTT listeners, Starling has none
# of them in a benchmark. The backlog is Node's default (ejabberd's is 5, which drops connection storms), the
# stanza limit is Starling's, and the queue limit is far above what a 15,000 msg/s burst can pile up.
listen:
${listener(options.c2sPort, 'starttls')}
${listener(options.directTlsPort, 'direct')}

s2s_access: none
max_fsm_queue: 1000000

auth_method: internal
# SCRAM-SHA-256 at ejabberd's default of 4096 PBKDF2 iterations, the same cost as Starling's
# auth.scramIterations default, so logins and registrations do the same hashing work on both servers.
auth_password_format: scram
auth_scram_hash: sha256
disable_sasl_mechanisms:
  - "digest-md5"
  - "X-OAUTH2"

default_db: mnesia
# The benchmark registers thousands of accounts from one address in a burst.
registration_timeout: infinity
# The default caches (1,000 entries) thrash with the benchmark's tens of thousands of roster items; an
# operator with that many sizes them up. Starling keeps no such cache: it asks its store.
cache_size: 1000000

acl:
  loopback:
    ip:
      - 127.0.0.0/8
      - ::1/128

access_rules:
  c2s:
    allow: all
  register:
    allow: all
  trusted_network:
    allow: loopback

# No c2s shaper at all (the listeners say shaper: none); sessions per user are left unlimited, and the offline
# store holds as many messages per account as Starling's limits.offlineMessages default.
shaper_rules:
  max_user_offline_messages: 1000

# Starling's default features. mod_privacy is there only because mod_blocking requires it.
modules:
  mod_blocking: {}
  mod_caps: {}
  mod_carboncopy: {}
  mod_disco: {}
  mod_last: {}
${
  options.archive === false
    ? ''
    : `  # Starling archives every chat message by default; ejabberd's MAM also adds the XEP-0359 stanza-id.
  mod_mam:
    db_type: mnesia
    default: always
`
}  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_privacy: {}
  mod_private: {}
  mod_register:
    access: register
    ip_access: trusted_network
  mod_roster:
    versioning: true
  # An unbounded ack queue, like Starling's, so clients that ack lazily during bursts are not disconnected.
  mod_stream_mgmt:
    resume_timeout: 300
    max_ack_queue: infinity
  mod_time: {}
  mod_vcard:
    search: false
  mod_version:
    show_os: false
`;
}

/**
 * ejabberdctl sources this after deciding how to run erl, so it can override that decision: the packaged
 * script would su to the ejabberd user, who cannot write our directory.
 */
function ejabberdctlCfg(options: EjabberdOptions, distPort: number): string {
  // One scheduler on the pinned core; schedulers that spin while idle would count as CPU spent on the
  // load, so busy waiting is off and CPU per operation is work done.
  const pinned =
    options.cpu === undefined ? '' : ' +S 1:1 +SDcpu 1:1 +sbwt none +sbwtdcpu none +sbwtdio none';
  return `# Written by bench/src/servers/ejabberd.ts on every start; sourced by ejabberdctl.
EXEC_CMD=as_current_user
EJABBERD_BYPASS_WARNINGS=true
# A fixed distribution port means no epmd: nothing shared with other Erlang nodes, nothing left running after.
ERL_DIST_PORT=${distPort}
ERL_MAX_PORTS=65536
ERL_PROCESSES=262144
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -kernel inet_dist_use_interface {127,0,0,1}${pinned}"
`;
}

async function ensureCookie(dir: string): Promise<void> {
  const cookie = join(dir, '.erlang.cookie');
  if (existsSync(cookie)) return;
  // Erlang refuses a cookie file that others can read.
  await writeFile(cookie, randomBytes(20).toString('hex').toUpperCase(), { mode: 0o400 });
}

async function writeFiles(options: EjabberdOptions, paths: Paths, distPort: number): Promise<void> {
  await mkdir(paths.spool, { recursive: true });
  await mkdir(paths.logs, { recursive: true });
  await ensureCookie(paths.dir);
  const pem = `${options.cert.trim()}\n${options.key.trim()}\n`;
  await writeFile(paths.pem, pem, { mode: 0o600 });
  await writeFile(paths.config, ejabberdYaml(options, paths));
  await writeFile(paths.ctlConfig, ejabberdctlCfg(options, distPort));
  // ejabberdctl points Erlang's resolver at the config directory; the node name needs "localhost" to resolve.
  await writeFile(paths.inetrc, '{lookup, [file, native]}.\n{host, {127,0,0,1}, ["localhost"]}.\n');
}

function ctlArgs(paths: Paths, node: string, command: string): string[] {
  return [
    EJABBERDCTL,
    ...['--node', node, '--config-dir', paths.dir, '--config', paths.config],
    ...['--ctl-config', paths.ctlConfig, '--spool', paths.spool, '--logs', paths.logs],
    command,
  ];
}

/** HOME decides where Erlang looks for the cookie, so ours is used rather than root's. */
function ctlEnv(paths: Paths): NodeJS.ProcessEnv {
  return { ...process.env, HOME: paths.dir };
}

function spawnCtl(paths: Paths, node: string, command: string, cpu?: number): ChildProcess {
  const args = ctlArgs(paths, node, command);
  const argv = cpu === undefined ? args : ['taskset', '-c', String(cpu), ...args];
  const out = openSync(paths.console, 'a');
  try {
    return spawn(argv[0]!, argv.slice(1), {
      cwd: paths.dir,
      env: ctlEnv(paths),
      stdio: ['ignore', out, out],
    });
  } finally {
    closeSync(out);
  }
}

function serverPids(rootPid: number): number[] {
  const table = processTable();
  const beam = descendants(rootPid, table).find((entry) => entry.comm.startsWith('beam'));
  if (beam === undefined) return [];
  return [beam.pid, ...descendants(beam.pid, table).map((entry) => entry.pid)];
}

function tailOf(file: string, bytes: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length > bytes ? text.slice(-bytes) : text;
  } catch {
    return '';
  }
}

function logTail(paths: Paths): string {
  return ['console.log', 'error.log', 'ejabberd.log']
    .map((name) => [name, tailOf(join(paths.logs, name), 3000).trim()] as const)
    .filter(([, text]) => text !== '')
    .map(([name, text]) => `--- ${name} ---\n${text}`)
    .join('\n');
}

async function waitUntilReady(options: EjabberdOptions, paths: Paths, child: ChildProcess): Promise<void> {
  try {
    await waitForStream(options, onceExited(child), START_TIMEOUT_MS);
  } catch (err) {
    throw new Error(`ejabberd: ${(err as Error).message}\n${logTail(paths)}`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => resolveExit(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveExit(true);
    });
  });
}

async function gone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isRunning)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already exited
    }
  }
}

async function runCtl(paths: Paths, node: string, command: string): Promise<void> {
  const ctl = spawnCtl(paths, node, command);
  if (!(await exited(ctl, STOP_TIMEOUT_MS)) && ctl.pid !== undefined) killAll([ctl.pid]);
}

async function stopInstance(paths: Paths, node: string, child: ChildProcess): Promise<void> {
  const rootPid = child.pid;
  if (rootPid === undefined) return;
  // Taken first: once the shell wrapper exits, its orphans can no longer be found through it.
  const snapshot = processTree(rootPid);
  if (child.exitCode === null && child.signalCode === null) {
    await runCtl(paths, node, 'stop');
    await exited(child, STOP_TIMEOUT_MS);
  }
  const remaining = [...new Set([...snapshot, ...processTree(rootPid)])];
  killAll(remaining.filter(isRunning));
  if (!(await gone(remaining, 5000))) {
    throw new Error(`ejabberd processes survived SIGKILL: ${remaining.join(', ')}`);
  }
}

async function installedVersion(): Promise<string | undefined> {
  try {
    const script = await readFile(EJABBERDCTL, 'utf8');
    const libs = /^ERL_LIBS='([^']+)'/m.exec(script)?.[1];
    if (libs === undefined) return undefined;
    const names = readdirSync(libs).map((name) => /^ejabberd-(\d[\w.]*)$/.exec(name)?.[1]);
    return names.find((version) => version !== undefined);
  } catch {
    return undefined;
  }
}

/** Connections on `port` still in TIME_WAIT, as `ss` (iproute2) counts them. */
function timeWaits(port: number): number {
  const listed = spawnSync('ss', ['-Htan', 'state', 'time-wait', `( sport = :${String(port)} )`], {
    encoding: 'utf8',
  });
  if (listed.status !== 0) throw new Error(`ss failed: ${listed.stderr}`);
  return listed.stdout.split('\n').filter((line) => line.trim() !== '').length;
}

/**
 * ejabberd binds its listeners without SO_REUSEADDR, so connections it closed first in the previous run
 * (TIME_WAIT, up to a minute) make its start fail with eaddrinuse: wait for them to go.
 */
async function waitForQuietPorts(ports: readonly number[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (ports.some((port) => timeWaits(port) > 0)) {
    if (Date.now() > deadline)
      throw new Error(`ports ${ports.join(', ')} still have closing connections after 120 s`);
    await sleep(1000);
  }
}

export async function startEjabberd(options: EjabberdOptions): Promise<RunningEjabberd> {
  await waitForQuietPorts([options.c2sPort, options.directTlsPort]);
  const paths = pathsIn(resolve(options.dir));
  const node = nodeNameFor(paths.dir);
  await mkdir(paths.dir, { recursive: true });
  await writeFiles(options, paths, await freePort());
  const child = spawnCtl(paths, node, 'foreground', options.cpu);
  const rootPid = child.pid;
  if (rootPid === undefined) {
    const [error] = (await once(child, 'error')) as unknown[];
    throw new Error(`could not start ${EJABBERDCTL}: ${error instanceof Error ? error.message : 'unknown'}`);
  }
  // A benchmark that crashes must not leave the server running: the node would outlive us otherwise.
  const killOnExit = (): void => killAll(processTree(rootPid));
  process.once('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= stopInstance(paths, node, child).finally(() => process.off('exit', killOnExit)));
  try {
    await waitUntilReady(options, paths, child);
  } catch (error) {
    await stop();
    throw error;
  }
  const version = await installedVersion();
  return {
    name: version === undefined ? 'ejabberd' : `ejabberd ${version}`,
    pids: () => serverPids(rootPid),
    stop,
  };
}
