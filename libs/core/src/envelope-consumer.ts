// How roles consume the bus: decode each envelope, drop replays (at-least-once delivery), contain failures.
import type { BusRecord, BusSubscription, StanzaBus } from '@starling/ports';
import type { Logger } from './log.ts';
import { ReplayGuard } from './replay-guard.ts';
import { decodeEnvelope, type Envelope } from './topics.ts';

/** Envelope ids remembered to drop replays; a bus replays at most a partition's uncommitted tail. */
const REPLAY_WINDOW = 100_000;

export type EnvelopeHandler = (envelope: Envelope, record: BusRecord) => Promise<void>;

/**
 * Subscribes `group` to `topic` and hands each new envelope to `handle`. Undecodable records and
 * replays are dropped; a handler failure is logged and the consumer goes on with the next record.
 * Topics with envelopes of their own (the archive topic) pass their decoder.
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
  decode: (value: string) => E,
): Promise<BusSubscription>;
export function subscribeEnvelopes(
  bus: StanzaBus,
  topic: string,
  group: string,
  log: Logger,
  handle: (envelope: Envelope, record: BusRecord) => Promise<void>,
  decode: (value: string) => Envelope = decodeEnvelope,
): Promise<BusSubscription> {
  const replays = new ReplayGuard(REPLAY_WINDOW);
  return bus.subscribe(topic, group, async (record) => {
    let envelope: Envelope;
    try {
      envelope = decode(record.value);
    } catch (err) {
      log.error({ err, topic, key: record.key }, 'undecodable record dropped');
      return;
    }
    if (!replays.admit(envelope.id)) {
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
