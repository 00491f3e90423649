// How roles consume the bus: decode each envelope, drop replays (at-least-once delivery), contain failures.
import type { BusRecord, BusSubscription, StanzaBus } from '@starling/ports';
import type { Logger } from './log.ts';
import { ReplayGuard } from './replay-guard.ts';
import { decodeEnvelope, type Envelope } from './topics.ts';

/** Envelope ids remembered to drop replays; a bus replays at most a partition's uncommitted tail. */
const REPLAY_WINDOW = 100_000;

export type EnvelopeHandler = (envelope: Envelope, record: BusRecord) => Promise<void>;

/** How a topic with envelopes of its own (the archive topic) is read. */
export interface EnvelopeReading<E extends { readonly id: string }> {
  readonly decode: (value: string) => E;
  /**
   * Envelopes whose handling twice does no harm (a write that keeps the first copy of an id): they skip
   * the replay guard, which then neither spends a lookup nor keeps their ids.
   */
  readonly idempotent?: (envelope: E) => boolean;
}

/**
 * Subscribes `group` to `topic` and hands each new envelope to `handle`. Undecodable records and
 * replays are dropped; a handler failure is logged and the consumer goes on with the next record.
 */
export function subscribeEnvelopes(
  bus: StanzaBus,
  topic: string,
  group: string,
  log: Logger,
  handle: EnvelopeHandler,
): Promise<BusSubscription>;
export function subscribeEnvelopes<E extends { readonly id: string }>(
  bus: StanzaBus,
  topic: string,
  group: string,
  log: Logger,
  handle: (envelope: E, record: BusRecord) => Promise<void>,
  reading: EnvelopeReading<E>,
): Promise<BusSubscription>;
export function subscribeEnvelopes(
  bus: StanzaBus,
  topic: string,
  group: string,
  log: Logger,
  handle: (envelope: Envelope, record: BusRecord) => Promise<void>,
  reading: EnvelopeReading<Envelope> = { decode: decodeEnvelope },
): Promise<BusSubscription> {
  const { decode, idempotent } = reading;
  const replays = new ReplayGuard(REPLAY_WINDOW);
  return bus.subscribe(topic, group, async (record) => {
    let envelope: Envelope;
    try {
      envelope = decode(record.value);
    } catch (err) {
      log.error({ err, topic, key: record.key }, 'undecodable record dropped');
      return;
    }
    if (idempotent?.(envelope) !== true && !replays.admit(envelope.id)) {
      log.debug({ id: envelope.id, topic }, 'replayed record dropped');
      return;
    }
    try {
      await handle(envelope, record);
    } catch (err) {
      log.error({ err, id: envelope.id, topic, key: record.key }, 'record failed');
    }
  });
}
