// XEP-0313: Message Archive Management. The router archives and hands over requests; the archive role stores and answers.
import { defineFeature, type FeatureContext } from '@starling/core';
import { NS_MAM, NS_MAM_EXTENDED } from '@starling/xmpp';
import { createArchiveHandler, type ArchiveHandler } from './archive-handler.ts';
import { setupArchiving } from './archiving.ts';

export type { ArchiveHandler } from './archive-handler.ts';

const handlers = new WeakMap<FeatureContext, ArchiveHandler>();

/**
 * The handler this feature set up for `context` (an archive role's, as `setupFeatures` returned it), or
 * undefined when the feature is not enabled in that host.
 */
export function archiveHandlerFor(context: FeatureContext): ArchiveHandler | undefined {
  return handlers.get(context);
}

export default defineFeature({
  id: 'xep-0313-mam',
  spec: { xep: 313, title: 'Message Archive Management' },
  roles: ['router', 'archive'],
  enabled: (config) => config.archive.enabled,
  // §7: user archives live at the account's bare JID; #extended: after-id, before-id, ids, flip-page, metadata.
  disco: { accountFeatures: [NS_MAM, NS_MAM_EXTENDED] },
  setup(context) {
    if (context.role === 'archive') handlers.set(context, createArchiveHandler(context));
    else setupArchiving(context);
  },
});
