// ARCHITECTURE guarantee 4: sessions of an edge whose lease ran out are ended as if their streams had closed.
import {
  encodeEnvelope,
  newEnvelopeId,
  sweptSessions,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
  unackedEnvelope,
  type Logger,
} from '@starling/core';
import type { SessionRecord, SessionRegistry, StanzaBus } from '@starling/ports';
import { bareOf } from '@starling/xmpp';

export interface EdgeSweeper {
  /**
   * One pass: every expired edge's sessions are unbound and their ends published, except stream-managed
   * ones, which are detached to wait for resumption (XEP-0198); detached streams past their timeout are
   * closed, their unacknowledged stanzas routed again. Returns the sessions ended.
   */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Sweeps every `intervalMs`. Each session end goes onto the presence topic under its user's key, so
 * contacts get unavailable presence in order with everything else that user did. Several presence
 * processes may sweep at once: unbind hands each record to exactly one of them.
 */
export function startEdgeSweeper(
  registry: SessionRegistry,
  bus: StanzaBus,
  log: Logger,
  intervalMs: number,
): EdgeSweeper {
  async function publishEnd(record: SessionRecord): Promise<void> {
    const envelope = encodeEnvelope({ t: 'session-end', id: newEnvelopeId(), ts: Date.now(), record });
    await bus.publish(TOPIC_PRESENCE, bareOf(record.jid), envelope);
    sweptSessions.inc();
  }

  async function sweep(): Promise<number> {
    let ended = 0;
    for (const edgeId of await registry.expiredEdges()) {
      const sessions = await registry.sessionsOfEdge(edgeId);
      let detached = 0;
      for (const session of sessions) {
        if (
          session.stream !== undefined &&
          (await registry.detachStream(session.jid, session.stream, session.sessionId))
        ) {
          detached += 1;
          continue;
        }
        const record = await registry.unbind(session.jid, session.sessionId);
        if (record === undefined) continue;
        await publishEnd(record);
        ended += 1;
      }
      await registry.dropEdge(edgeId);
      log.warn(
        { edgeId, sessions: sessions.length, detached },
        'swept the sessions of an edge whose lease expired',
      );
    }
    for (const { jid, id } of await registry.expiredStreams()) {
      const closed = await registry.closeStream(jid, id);
      if (closed === undefined) continue;
      for (const stanza of closed.unacked) {
        const envelope = unackedEnvelope(jid, stanza);
        if (envelope !== undefined) await bus.publish(TOPIC_STANZAS, bareOf(jid), encodeEnvelope(envelope));
      }
      if (closed.record !== undefined) {
        await publishEnd(closed.record);
        ended += 1;
      }
      log.info({ stream: id, unacked: closed.unacked.length }, 'closed a stream nobody resumed in time');
    }
    return ended;
  }

  let inFlight: Promise<void> | undefined;
  const timer = setInterval(() => {
    // A pass still running (a slow registry) makes this tick a no-op rather than a second pass.
    inFlight ??= sweep()
      .then(
        () => undefined,
        (err: unknown) => log.error({ err }, 'edge sweep failed'),
      )
      .finally(() => (inFlight = undefined));
  }, intervalMs);
  timer.unref();

  return {
    sweep,
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}
