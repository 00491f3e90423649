// vitest globalSetup of the cluster shape: one Kafka, Redis and PostgreSQL for every test file, which each
// start their own roles on them (the JVM's start-up would otherwise be paid per file).
import type { TestProject } from 'vitest/node';
import { startBackends, type BackendAddresses } from '../../deploy/local/cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The shared backends of the cluster shape; absent in the embedded shape. */
    starlingBackends: BackendAddresses;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const backends = await startBackends();
  project.provide('starlingBackends', {
    kafkaBrokers: backends.kafkaBrokers,
    redisUrl: backends.redisUrl,
    postgresUrl: backends.postgresUrl,
  });
  return () => backends.stop();
}
