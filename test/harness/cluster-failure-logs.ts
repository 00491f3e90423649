// Setup file of the cluster project: a conformance test that fails prints its cluster's role logs (with
// STARLING_TEST_LOG, the harness prints them all when the cluster stops).
import { beforeEach } from 'vitest';
import { printRoleLogs, runningClusters } from './role-logs.ts';

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const cluster of runningClusters()) printRoleLogs(cluster);
  });
});
