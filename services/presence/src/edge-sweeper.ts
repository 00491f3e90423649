// ARCHITECTURE guarantee 4: sessions of an edge whose lease ran out are ended as if their streams had closed.
import { randomUUID } from 'node:crypto';
import { encodeEnvelope, sweptSessions, TOPIC_PRESENCE, type Logger } from '@starling/core';
import type { SessionRegistry, StanzaBus } from '@starling/ports';
import { bareOf } from '@starling/xmpp';

export interface EdgeSweeper {
  /** One pass: every expired edge's sessions are unbound and their ends published. Returns sessions ended. */
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
  async function sweep(): Promise<number> {
    let ended = 0;
    for (const edgeId of await registry.expiredEdges()) {
      const sessions = await registry.sessionsOfEdge(edgeId);
      for (const session of sessions) {
        const record = await registry.unbind(session.jid, session.sessionId);
        if (record === undefined) continue;
        const envelope = encodeEnvelope({ t: 'session-end', id: randomUUID(), ts: Date.now(), record });
        await bus.publish(TOPIC_PRESENCE, bareOf(record.jid), envelope);
        ended += 1;
        sweptSessions.inc();
      }
      await registry.dropEdge(edgeId);
      log.warn({ edgeId, sessions: sessions.length }, 'swept the sessions of an edge whose lease expired');
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
