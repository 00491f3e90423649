// Test runner: unit tests beside the code, contract suites in libs/ports, conformance scenarios in test/,
// and the conformance scenarios once more against the cluster shape.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two files at a time on two cores (the default is one fewer than the cores). The cluster project
    // still runs its files one after another through its singleFork.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'embedded',
          include: [
            'libs/*/src/**/*.test.ts',
            'services/*/src/**/*.test.ts',
            'test/**/*.test.ts',
            'deploy/local/**/*.test.ts',
            'bench/**/*.test.ts',
          ],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Two edges, two routers, presence and archive as processes on one Kafka, Redis and PostgreSQL
        // (started once by the globalSetup). The files share the broker's topic names, so they run one
        // at a time in one worker, after everything else.
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/conformance/**/*.test.ts'],
          env: { STARLING_TEST_SHAPE: 'cluster' },
          globalSetup: ['./test/harness/cluster-backends.ts'],
          setupFiles: ['./test/harness/cluster-failure-logs.ts'],
          poolOptions: { forks: { singleFork: true } },
          // A file's beforeAll starts six role processes and waits until they work together.
          hookTimeout: 180_000,
          // Each wait for a stanza may take up to 15 s here (test/harness/shape.ts).
          testTimeout: 60_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
