// What the role processes of a local cluster wrote, printed where a test's reader needs it: when a test
// failed, and with STARLING_TEST_LOG set also after each cluster test or when the conformance harness
// stops its cluster. Roles log at info unless STARLING_TEST_LOG names another level (testRoleEnv), so a
// failure in CI shows what the roles were doing.
import { onTestFailed, onTestFinished } from 'vitest';
import type { RoleProcess } from '../../deploy/local/cluster.ts';

interface WithRoles {
  readonly processes: readonly RoleProcess[];
}

/** Clusters started by the conformance harness and not stopped yet. */
const running = new Set<WithRoles>();

/** Prints each role's output, its last `lines` lines when given. */
export function printRoleLogs(cluster: WithRoles, lines?: number): void {
  for (const proc of cluster.processes) {
    let text = proc.output().trimEnd();
    if (lines !== undefined) text = text.split('\n').slice(-lines).join('\n');
    process.stdout.write(`==== ${proc.name} (pid ${String(proc.pid)})\n${text}\n`);
  }
}

/**
 * Inside a test: prints the cluster's role logs (the last `lines` of each, when given) if the test
 * failed, or once it ended when STARLING_TEST_LOG is set.
 */
export function showRoleLogs(cluster: WithRoles | undefined, lines?: number): void {
  const print = (): void => {
    if (cluster) printRoleLogs(cluster, lines);
  };
  if (process.env.STARLING_TEST_LOG) onTestFinished(print);
  else onTestFailed(print);
}

/** Counts `cluster` among the running ones until the returned function is called. */
export function trackRunning(cluster: WithRoles): () => void {
  running.add(cluster);
  return () => running.delete(cluster);
}

/** The clusters the conformance harness has running: what a failing conformance test prints. */
export function runningClusters(): Iterable<WithRoles> {
  return running;
}
