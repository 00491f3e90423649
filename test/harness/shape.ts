// Which shape the conformance harness runs servers in: STARLING_TEST_SHAPE=embedded (the default) or cluster.

export type TestShape = 'embedded' | 'cluster';

function shapeFromEnv(): TestShape {
  const value = process.env.STARLING_TEST_SHAPE ?? 'embedded';
  if (value !== 'embedded' && value !== 'cluster') {
    throw new Error(`STARLING_TEST_SHAPE must be embedded or cluster, not "${value}"`);
  }
  return value;
}

/** The shape this test process runs its servers in. */
export const TEST_SHAPE: TestShape = shapeFromEnv();

/**
 * How long a scenario waits for a stanza or an answer it expects. In the cluster shape one crosses Kafka
 * and two or three processes that share the machine's cores with the test runner, and a loaded machine
 * makes a hop take seconds. A wait ends as soon as what it waits for comes, so a longer deadline costs a
 * passing scenario nothing.
 */
export const EXPECT_TIMEOUT_MS = TEST_SHAPE === 'cluster' ? 15_000 : 5000;
