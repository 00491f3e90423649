// @starling/features: every protocol feature, registered in one list. Hosts pick those of their role.
import type { Config, Feature } from '@starling/core';

/** Every feature, in registration order. Helpers and hosts import from here only. */
export const allFeatures: readonly Feature[] = [];

/** The features enabled by `config`. */
export function enabledFeatures(config: Config): Feature[] {
  return allFeatures.filter((feature) => feature.enabled?.(config) ?? true);
}
