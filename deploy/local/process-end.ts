// Local infrastructure: the backends this process started never outlive it, however it ends.

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
