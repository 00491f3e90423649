// The router role: consumes client stanzas from the bus, answers IQs for the server and its accounts,
// and routes messages by RFC 6121 §8. Presence belongs to the presence role.
import {
  GROUP_ROUTER,
  subscribeEnvelopes,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
  type Envelope,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { setupRole } from '@starling/features';
import type { BusRecord } from '@starling/ports';
import { attr, errorReply, Jid, parseTrusted, type Element } from '@starling/xmpp';
import { createClientStanzaHandler } from './client-stanza.ts';

/** Starts consuming the stanzas topic; `close` stops after the stanzas in flight. */
export async function startRouter(deps: RoleDeps): Promise<RoleHandle> {
  const log = deps.log.child({ role: 'router' });
  const { iq, hooks, routing } = await setupRole('router', deps);
  const handle = createClientStanzaHandler({ config: deps.config, store: deps.store, hooks, iq, routing });

  async function onRecord(envelope: Envelope, record: BusRecord): Promise<void> {
    if (envelope.t !== 'stanza') {
      await deps.bus.publish(TOPIC_PRESENCE, record.key, record.value, record.headers);
      return;
    }
    let stanza: Element;
    let from: Jid | undefined;
    try {
      stanza = parseTrusted(envelope.xml);
      from = Jid.tryParse(envelope.from);
    } catch (err) {
      log.warn({ err, id: envelope.id }, 'malformed envelope dropped');
      return;
    }
    if (from === undefined) {
      log.warn({ id: envelope.id, from: envelope.from }, 'envelope with an invalid sender dropped');
      return;
    }
    if (stanza.name === 'presence' && envelope.dir !== 'unacked') {
      await deps.bus.publish(TOPIC_PRESENCE, record.key, record.value, record.headers);
      return;
    }
    // Edges stamp 'from' (RFC 6120 §8.1.2.1); the envelope's sender is the authority if one did not.
    stanza.attrs.from ??= envelope.from;
    const { edgeId, sessionId } = envelope;
    const sender = envelope.from;
    const reply = async (answer: Element): Promise<void> => {
      // The answer goes to the stream that asked; if it is gone, so is whoever waited for the answer.
      if (edgeId !== '' && sessionId !== '') {
        await deps.delivery.deliver(
          { edgeId, sessionId, jid: sender },
          { kind: 'stanza', xml: answer.toString() },
        );
      } else {
        await routing.route(answer);
      }
    };
    try {
      if (envelope.dir === 'in') await routing.route(stanza);
      else if (envelope.dir === 'unacked') await routing.reroute(stanza);
      else await handle(stanza, from, reply, { edgeId, sessionId });
    } catch (err) {
      log.error({ err, stanza: envelope.xml }, 'stanza handling failed');
      const type = attr(stanza, 'type');
      if (type === 'error' || type === 'result') return;
      try {
        await reply(errorReply(stanza, 'internal-server-error'));
      } catch (replyErr) {
        log.error({ err: replyErr }, 'could not answer a failed stanza');
      }
    }
  }

  const subscription = await subscribeEnvelopes(deps.bus, TOPIC_STANZAS, GROUP_ROUTER, log, onRecord);
  return {
    async close() {
      await subscription.close();
    },
  };
}
