// The presence role (RFC 6121 §3-4): consumes the presence topic and hands each envelope to the presence feature.
import {
  GROUP_PRESENCE,
  subscribeEnvelopes,
  TOPIC_PRESENCE,
  type Envelope,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { presenceHandlerFor, setupRole } from '@starling/features';
import { Jid } from '@starling/xmpp';
import { startEdgeSweeper } from './edge-sweeper.ts';

/** Starts consuming the presence topic as the presence consumer group. */
export async function startPresence(deps: RoleDeps): Promise<RoleHandle> {
  const log = deps.log.child({ role: 'presence' });
  const host = await setupRole('presence', deps);
  const handler = presenceHandlerFor(host.context);
  if (handler === undefined) log.warn('the rfc6121-presence feature is not enabled: presence is dropped');

  async function offlineStored(owner: string): Promise<void> {
    const jid = Jid.tryParse(owner);
    if (jid === undefined || jid.local === '') {
      log.warn({ owner }, 'offline-stored record for no account dropped');
      return;
    }
    await host.hooks.run('offline-stored', { owner: jid });
  }

  async function dispatch(envelope: Envelope): Promise<void> {
    if (envelope.t === 'offline-stored') return offlineStored(envelope.owner);
    if (handler === undefined) return;
    if (envelope.t === 'session-end') await handler.sessionEnded(envelope);
    else if (envelope.dir === 'in') await handler.inbound(envelope);
    else await handler.outbound(envelope);
  }

  const subscription = await subscribeEnvelopes(deps.bus, TOPIC_PRESENCE, GROUP_PRESENCE, log, dispatch);

  const sweeper = startEdgeSweeper(deps.registry, deps.bus, log, deps.config.cluster.sweepSeconds * 1000);

  return {
    close: async () => {
      await sweeper.stop();
      await subscription.close();
    },
  };
}
