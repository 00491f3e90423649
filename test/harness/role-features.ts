// Loaded (node --import) into the role processes of a cluster-shape test whose file brings features of its
// own (fault injection): adds the `features` of the module STARLING_TEST_FEATURES names to the catalogue
// each role enables its features from, as startTestServer's featureModule does in the embedded shape.
import type { Feature } from '@starling/core';
import { allFeatures } from '@starling/features';

const module = process.env.STARLING_TEST_FEATURES;
if (module !== undefined && module !== '') {
  const { features } = (await import(module)) as { features: readonly Feature[] };
  // The catalogue is read-only to the code it serves; this test-only entry point is its one writer.
  (allFeatures as Feature[]).push(...features);
}
