// Local infrastructure: the backends this process started never outlive it, however it ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

interface Registry {
  readonly cleanups: Set<() => void>;
  installed: boolean;
}

// One registry per process, even where a test runner evaluates this module once per test file: a second
// set of handlers would take the first for another program's and leave the cleanup to it.
const REGISTRY = Symbol.for('starling.deploy.local.process-end');
const shared = globalThis as unknown as Record<symbol, Registry | undefined>;
const registry = (shared[REGISTRY] ??= { cleanups: new Set(), installed: false });
const { cleanups } = registry;

function runAll(): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // Best effort while the process ends; the next backend still gets its turn.
    }
  }
  cleanups.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  // A program with its own handler (the `npm run cluster` command) stops its roles before the backends and
  // then exits, which runs the cleanups that are left; killing the backends now would pull them from
  // under roles still draining.
  if (process.listenerCount(signal) > 1) return;
  runAll();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  // Without listeners the signal's default action (ending the process) happens again.
  process.kill(process.pid, signal);
}

/**
 * Runs `cleanup` (synchronous: it may be the last thing the process does) when the process exits, or when
 * it gets SIGINT, SIGTERM or SIGHUP that nothing else handles. Returns a function that unregisters it.
 */
export function onProcessEnd(cleanup: () => void): () => void {
  if (!registry.installed) {
    registry.installed = true;
    process.on('exit', runAll);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** How a watched process is ended once the process that started it died. */
export interface EndOptions {
  /** Sent first; default SIGKILL. */
  readonly signal?: NodeJS.Signals;
  /** How long the process may take to exit after `signal` before it is killed; default 5,000 ms. */
  readonly graceMs?: number;
  /** Removed once the process is gone. */
  readonly dir?: string;
}

// $1 pid, $2 signal name, $3 grace in tenths of a second, $4 directory or empty. The read returns when
// stdin closes: when the process that holds its other end dies, however it dies. A zombie counts as gone:
// its new parent may be slow to reap it.
const WATCHDOG_SCRIPT = [
  'alive() {',
  '  kill -0 "$1" 2>/dev/null || return 1',
  '  [ -r "/proc/$1/stat" ] || return 0',
  '  state=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null | cut -c1)',
  '  [ -n "$state" ] && [ "$state" != Z ]',
  '}',
  'read _ignored',
  'kill -s "$2" "$1" 2>/dev/null',
  'n=0; while alive "$1" && [ $n -lt "$3" ]; do sleep 0.1; n=$((n+1)); done',
  'alive "$1" && kill -s KILL "$1" 2>/dev/null',
  'n=0; while alive "$1" && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done',
  '[ -z "$4" ] || rm -rf "$4"',
].join('\n');

/**
 * Ends `child` (a process in a group of its own, which a terminal's Ctrl-C or a killed parent would not
 * reach) when this process dies, SIGKILL included, where exit handlers cannot run: a small shell reads
 * from a pipe to this process and acts when it closes. The shell goes away when `child` exits, so a reused
 * PID is never signalled. Returns the shell's process; nothing when `child` did not start (no PID).
 */
export function endWithThisProcess(child: ChildProcess, options: EndOptions = {}): ChildProcess | undefined {
  const pid = child.pid;
  if (pid === undefined) return undefined;
  const signal = (options.signal ?? 'SIGKILL').replace(/^SIG/, '');
  const tenths = String(Math.ceil((options.graceMs ?? 5_000) / 100));
  const watchdog = spawn(
    'sh',
    ['-c', WATCHDOG_SCRIPT, 'watchdog', String(pid), signal, tenths, options.dir ?? ''],
    {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    },
  );
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.on('error', () => undefined);
  const release = (): void => {
    if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
  };
  if (child.exitCode !== null || child.signalCode !== null) release();
  else child.once('exit', release);
  return watchdog;
}

/**
 * Whether `pid` runs; a zombie (exited, waiting to be reaped by a parent that may be slow to) does not.
 * Only Linux tells a zombie apart (from /proc); elsewhere a zombie counts as running.
 */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
