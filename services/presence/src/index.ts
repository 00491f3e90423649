// The presence role (RFC 6121 §3-4): consumes the presence topic and hands each envelope to the presence feature.
import {
  decodeEnvelope,
  GROUP_PRESENCE,
  Hooks,
  setupFeatures,
  TOPIC_PRESENCE,
  type Envelope,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { createRouting, presenceHandlerFor } from '@starling/features';
import type { BusRecord } from '@starling/ports';
import { ReplayGuard } from './replay-guard.ts';

/** Envelope ids remembered to drop replays; a redelivered batch is far smaller. */
const REPLAY_WINDOW = 100_000;

/** Starts consuming the presence topic as the presence consumer group. */
export async function startPresence(deps: RoleDeps): Promise<RoleHandle> {
  const log = deps.log.child({ role: 'presence' });
  const hooks = new Hooks();
  const routing = createRouting({
    config: deps.config,
    registry: deps.registry,
    delivery: deps.delivery,
    bus: deps.bus,
    store: deps.store,
    hooks,
    log,
  });
  const host = await setupFeatures('presence', deps, routing, hooks);
  const handler = presenceHandlerFor(host.context);
  if (handler === undefined) log.warn('the rfc6121-presence feature is not enabled: presence is dropped');
  const replays = new ReplayGuard(REPLAY_WINDOW);

  async function dispatch(envelope: Envelope): Promise<void> {
    if (handler === undefined) return;
    if (envelope.t === 'session-end') await handler.sessionEnded(envelope);
    else if (envelope.dir === 'in') await handler.inbound(envelope);
    else await handler.outbound(envelope);
  }

  const subscription = await deps.bus.subscribe(TOPIC_PRESENCE, GROUP_PRESENCE, async (record: BusRecord) => {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(record.value);
    } catch (err) {
      log.error({ err, key: record.key }, 'undecodable presence record dropped');
      return;
    }
    if (!replays.admit(envelope.id)) {
      log.debug({ id: envelope.id }, 'replayed presence record dropped');
      return;
    }
    try {
      await dispatch(envelope);
    } catch (err) {
      // One failed envelope must not stop the consumer; the feature already answered what it could.
      log.error({ err, id: envelope.id, key: record.key }, 'presence record failed');
    }
  });

  return {
    close: () => subscription.close(),
  };
}
