// The archive role (XEP-0313): consumes the archive topic, where a user's archive writes and MAM requests
// share the user's key, so each request runs after every write published before it. In the embedded
// shape the router hands writes straight to the store this role shares (RoleDeps.archiveInProcess), and
// only requests come over the topic.
import {
  decodeArchiveEnvelope,
  GROUP_ARCHIVE,
  subscribeEnvelopes,
  TOPIC_ARCHIVE,
  type ArchiveEnvelope,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { archiveHandlerFor, setupRole } from '@starling/features';

/** Starts consuming the archive topic as the archive consumer group; `close` stops after the records in flight. */
export async function startArchive(deps: RoleDeps): Promise<RoleHandle> {
  const log = deps.log.child({ role: 'archive' });
  const host = await setupRole('archive', deps);
  const handler = archiveHandlerFor(host.context);
  if (handler === undefined) {
    if (deps.config.archive.enabled)
      log.warn('the xep-0313-mam feature is not set up: archive records are dropped');
    else log.info('archives are off (archive.enabled: false): archive records are dropped');
  }

  async function dispatch(envelope: ArchiveEnvelope): Promise<void> {
    if (handler === undefined) return;
    if (envelope.t === 'archive-write') await handler.write(envelope);
    else await handler.query(envelope);
  }

  const subscription = await subscribeEnvelopes(
    deps.bus,
    TOPIC_ARCHIVE,
    GROUP_ARCHIVE,
    log,
    dispatch,
    // Stores keep the first copy of an archived id, so only MAM queries need the replay guard.
    { decode: decodeArchiveEnvelope, idempotent: (envelope) => envelope.t === 'archive-write' },
  );
  return {
    close: () => subscription.close(),
  };
}
