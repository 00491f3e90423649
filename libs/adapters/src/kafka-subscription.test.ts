// KafkaSubscription's answers to sequences of kafkajs events that a real broker produces only by chance
// (kafka-stanza-bus.test.ts covers the subscription on a real broker). The sequences are the ones seen
// when a restarted broker was still loading its groups: a heartbeat "not coordinator", a rejoin refused
// with "coordinator loading", and kafkajs fetching on in the generation it had, with no GROUP_JOIN.
import { EventEmitter } from 'node:events';
import type { BusRecord } from '@starling/ports';
import { waitFor } from '@starling/ports/contracts';
import type { EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { KafkaSubscription, type KafkaBusLog } from './kafka-stanza-bus.ts';

const TOPIC = 'xmpp.stanzas';

/** A kafkajs consumer the test drives: it emits what kafkajs would, and hands batches to the subscription. */
class ScriptedConsumer {
  readonly events = {
    GROUP_JOIN: 'consumer.group_join',
    REBALANCING: 'consumer.rebalancing',
    CRASH: 'consumer.crash',
    HEARTBEAT: 'consumer.heartbeat',
  } as const;
  readonly #emitter = new EventEmitter();
  #eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  runs = 0;
  stops = 0;
  readonly commits: { partition: number; offset: string }[] = [];

  on(event: string, listener: (event: unknown) => void): () => void {
    this.#emitter.on(event, listener);
    return () => this.#emitter.off(event, listener);
  }

  emit(event: string, payload: Record<string, unknown>): void {
    this.#emitter.emit(event, { id: 0, type: event, timestamp: Date.now(), payload });
  }

  joined(partitions: readonly number[]): void {
    this.emit(this.events.GROUP_JOIN, { memberAssignment: { [TOPIC]: partitions } });
  }

  heartbeat(generation: number): void {
    this.emit(this.events.HEARTBEAT, { groupId: 'g', memberId: 'm', groupGenerationId: generation });
  }

  rebalancing(): void {
    this.emit(this.events.REBALANCING, { groupId: 'g', memberId: 'm' });
  }

  /** kafkajs handing over a fetched batch of `values`, the first at `from`. */
  async deliver(partition: number, from: number, values: readonly string[]): Promise<void> {
    const eachBatch = this.#eachBatch;
    if (!eachBatch) throw new Error('the consumer is not running');
    const messages = values.map((value, i): KafkaMessage => ({
      key: Buffer.from(`key-${value}`),
      value: Buffer.from(value),
      timestamp: String(Date.now()),
      attributes: 0,
      offset: String(from + i),
      headers: {},
    }));
    const payload = {
      batch: { topic: TOPIC, partition, messages, lastOffset: () => String(from + values.length - 1) },
      resolveOffset: () => undefined,
    } as unknown as EachBatchPayload;
    await eachBatch(payload);
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  subscribe(): Promise<void> {
    return Promise.resolve();
  }

  run(options: { eachBatch: (payload: EachBatchPayload) => Promise<void> }): Promise<void> {
    this.runs++;
    this.#eachBatch = options.eachBatch;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stops++;
    this.#eachBatch = undefined;
    return Promise.resolve();
  }

  disconnect(): Promise<void> {
    return this.stop();
  }

  pause(): void {}

  resume(): void {}

  commitOffsets(offsets: readonly { partition: number; offset: string }[]): Promise<void> {
    this.commits.push(...offsets.map(({ partition, offset }) => ({ partition, offset })));
    return Promise.resolve();
  }
}

const subscriptions: KafkaSubscription[] = [];

afterEach(async () => {
  await Promise.all(subscriptions.splice(0).map((s) => s.close()));
});

/** A started subscription on a scripted consumer, joined with partition 0 in generation 3. */
async function joinedSubscription(): Promise<{
  consumer: ScriptedConsumer;
  handled: string[];
  logged: string[];
}> {
  const consumer = new ScriptedConsumer();
  const handled: string[] = [];
  const logged: string[] = [];
  const log: KafkaBusLog = (_level, message) => logged.push(message);
  const subscription = new KafkaSubscription({
    kafka: { consumer: () => consumer } as unknown as Kafka,
    topic: TOPIC,
    group: 'router',
    handler: (record: BusRecord) => {
      handled.push(record.value);
      return Promise.resolve();
    },
    onError: () => undefined,
    log,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    rebalanceTimeout: 30_000,
    closeTimeout: 1_000,
    fetchMaxWait: 10,
    fetchMinBytes: 1,
  });
  subscriptions.push(subscription);
  const started = subscription.start();
  await waitFor(() => consumer.runs === 1, 1_000, 'run()');
  consumer.joined([0]);
  await started;
  consumer.heartbeat(3);
  await consumer.deliver(0, 0, ['a']);
  await waitFor(() => handled.includes('a'), 1_000, 'the first record');
  return { consumer, handled, logged };
}

/** Lets timers and handlers of a few turns run. */
const turns = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe('KafkaSubscription after a rejoin that failed', () => {
  it('starts records again once a heartbeat shows the coordinator kept it in its generation', async () => {
    const { consumer, handled, logged } = await joinedSubscription();
    consumer.rebalancing();
    // Fetched while the rejoin is pending: not started, and not resolved, so kafkajs fetches it again.
    await consumer.deliver(0, 1, ['b']);
    await turns();
    expect(handled).toEqual(['a']);

    // The rejoin was refused ("coordinator loading"); kafkajs went on in generation 3, and its
    // heartbeats there are accepted. No GROUP_JOIN comes.
    consumer.heartbeat(3);
    await consumer.deliver(0, 1, ['b', 'c']);
    await waitFor(() => handled.includes('c'), 1_000, 'the records fetched after the heartbeat');
    expect(handled).toEqual(['a', 'b', 'c']);
    expect(consumer.stops).toBe(0);
    expect(logged).toContain('consumer kept its generation after a failed rejoin');
    // Their offsets are committed: a later member does not replay them.
    await waitFor(
      () => consumer.commits.some((c) => c.partition === 0 && c.offset === '3'),
      2_000,
      'the commit after c',
    );
  });

  it('joins again when kafkajs goes on in a generation it holds no assignment for', async () => {
    const { consumer, handled, logged } = await joinedSubscription();
    consumer.rebalancing();
    // Accepted in generation 4, whose assignment never reached this member (no GROUP_JOIN).
    consumer.heartbeat(4);
    await consumer.deliver(0, 1, ['b']);
    await waitFor(() => consumer.runs === 2, 1_000, 'a new run() after stop()');
    expect(consumer.stops).toBe(1);
    expect(handled).toEqual(['a']);
    expect(logged).toContain('consumer fetching in a generation it has no assignment for, rejoining');

    consumer.joined([0]);
    await consumer.deliver(0, 1, ['b']);
    await waitFor(() => handled.includes('b'), 1_000, 'the record after the join');
    expect(handled).toEqual(['a', 'b']);
  });
});
