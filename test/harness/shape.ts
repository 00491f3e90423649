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
