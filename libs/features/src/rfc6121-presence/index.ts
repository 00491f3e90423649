// RFC 6121 §3-4: presence subscriptions and presence exchange, run by the presence role.
import { defineFeature, type FeatureContext } from '@starling/core';
import { createPresenceHandler, type PresenceHandler } from './handler.ts';

export type { PresenceHandler } from './handler.ts';

const handlers = new WeakMap<FeatureContext, PresenceHandler>();

/**
 * The handler this feature set up for `context` (the one `setupFeatures` returned), or undefined when the
 * feature is not enabled in that host.
 */
export function presenceHandlerFor(context: FeatureContext): PresenceHandler | undefined {
  return handlers.get(context);
}

export default defineFeature({
  id: 'rfc6121-presence',
  spec: { rfc: 6121, section: '3-4', title: 'Presence subscriptions and presence' },
  roles: ['presence'],
  setup(context) {
    handlers.set(context, createPresenceHandler(context));
  },
});
