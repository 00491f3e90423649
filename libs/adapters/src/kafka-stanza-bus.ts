// StanzaBus on Apache Kafka (cluster shape): keyed topics, consumer groups, commit after handling.
// Publishing goes through @platformatic/kafka's producer (about half kafkajs's CPU per record, see
// docs/benchmarks.md); consuming and topic administration through kafkajs.
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import {
  Producer as RecordProducer,
  compatibilityPartitioner,
  stringSerializers,
  type MessageToProduce,
  type SASLOptions,
} from '@platformatic/kafka';
import type { BusHandler, BusRecord, BusSubscription, StanzaBus } from '@starling/ports';
import { INGRESS_HEADER, traceConsume, tracePublish } from '@starling/telemetry';
import {
  Kafka,
  logLevel,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type KafkaConfig,
  type KafkaMessage,
  type LogEntry,
} from 'kafkajs';

/** Where the bus reports what happens below the port: client errors, crashes and restarts, rebalances. */
export type KafkaBusLog = (
  level: 'error' | 'warn' | 'info' | 'debug',
  message: string,
  fields: Readonly<Record<string, unknown>>,
) => void;

/** Settings of a {@link KafkaStanzaBus}; only `brokers` and `clientId` are required. */
export interface KafkaStanzaBusOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /** Names this process to the brokers (quotas, logs); unique per process is best. */
  readonly clientId: string;
  /** Told about each handler rejection; the record then counts as consumed. Default: `console.error`. */
  readonly onError?: (err: unknown, record: BusRecord) => void;
  /** Partitions of topics this bus creates. Default: the broker's `num.partitions`. */
  readonly partitions?: number;
  /** Replicas of topics this bus creates. Default: the broker's `default.replication.factor`. */
  readonly replicationFactor?: number;
  /** A member that sends no heartbeat for this long leaves its group (crash detection). Default 10 000. */
  readonly sessionTimeoutMs?: number;
  /** Default 1000; must stay well below the session timeout. */
  readonly heartbeatIntervalMs?: number;
  /** How long the group waits for its members to rejoin during a rebalance. Default 30 000. */
  readonly rebalanceTimeoutMs?: number;
  /**
   * Longest a closing subscription waits for its in-flight handlers; a handler still running then is
   * abandoned uncommitted, so its record is handed to another member. Default 30 000.
   */
  readonly closeTimeoutMs?: number;
  /** Attempts after the first failed produce request before a publish rejects. Default 10. */
  readonly publishRetries?: number;
  /** Longest wait for the broker's answer to one publish batch before it is refused (default 45 s). */
  readonly publishTimeoutMs?: number;
  /** How long a publish waits for others to share its request; 0 sends at once. Default 5. */
  readonly lingerMs?: number;
  /** How long a fetch waits for `fetchMinBytes` to arrive before it answers with less. Default 10. */
  readonly fetchMaxWaitMs?: number;
  /** Bytes a fetch waits for (up to `fetchMaxWaitMs`); 1 answers as soon as any record is there. Default 32 KiB. */
  readonly fetchMinBytes?: number;
  /** TLS to the brokers, as kafkajs takes it. */
  readonly ssl?: KafkaConfig['ssl'];
  /** SASL authentication to the brokers, as kafkajs takes it. */
  readonly sasl?: KafkaConfig['sasl'];
  /** Default: errors to `console.error`, nothing else. */
  readonly log?: KafkaBusLog;
}

// Kafka rejects a record batch above message.max.bytes (1 MiB by default) for one partition; staying
// under half of it for the whole request keeps any partition's share legal.
const MAX_BATCH_BYTES = 512 * 1024;
const MAX_BATCH_RECORDS = 1000;
// Records fetched ahead of the handler, per partition; the partition is paused beyond, resumed below half.
const MAX_BUFFERED_BYTES = 1024 * 1024;
// Handlers that resolve at once would keep the loop in microtasks; sockets need a turn now and then.
const RECORDS_PER_TURN = 256;
// Records of one partition handled at once (each of a different key); a handler mostly waits on I/O.
const MAX_CONCURRENT_PER_PARTITION = 64;
// A fetch waits for this many bytes or FETCH_MAX_WAIT_MS, whichever comes first: under load a request
// then carries many records rather than one or two, and the broker's cost is mostly per request. An
// idle consumer asks a hundred times a second, which costs the broker little.
const FETCH_MIN_BYTES = 32 * 1024;
// Also bounds how late a resumed partition, a heartbeat, or a rebalance is noticed.
const FETCH_MAX_WAIT_MS = 10;
// Publishes are held this long for company before a request goes out (Kafka 4's producer default).
const LINGER_MS = 5;
// Offsets of finished records go to the group coordinator at most this often: a commit per record
// cost the broker more than the records themselves. A crash replays at most this much more, and
// replays are expected (duplicates are suppressed by stanza id).
const COMMIT_INTERVAL_MS = 100;
// The clients back off for long by default (kafkajs up to 30 s); a bus must be back soon after its broker is.
const RETRY = { retries: 10, initialRetryTime: 100, maxRetryTime: 3_000 } as const;
/** Past the producer's own retries of a send (about 20 s with RETRY) and a request timeout or two. */
const PUBLISH_TIMEOUT_MS = 45_000;
const REVIVE_AFTER_MS = 1_000;
/** `messaging.system` of this bus's spans. */
const SYSTEM = 'kafka';

const LEVELS = new Map<number, 'error' | 'warn' | 'info' | 'debug'>([
  [logLevel.ERROR, 'error'],
  [logLevel.WARN, 'warn'],
  [logLevel.INFO, 'info'],
  [logLevel.DEBUG, 'debug'],
]);

const defaultLog: KafkaBusLog = (level, message, fields) => {
  if (level === 'error') console.error(`kafka stanza bus: ${message}`, fields);
};

const SASL_MECHANISMS = new Map<string, SASLOptions['mechanism']>([
  ['plain', 'PLAIN'],
  ['scram-sha-256', 'SCRAM-SHA-256'],
  ['scram-sha-512', 'SCRAM-SHA-512'],
]);

/** The bus's `ssl` and `sasl` (in kafkajs's terms) for the producer; a mechanism it lacks is refused. */
function producerConnection(options: KafkaStanzaBusOptions): { tls?: TlsOptions; sasl?: SASLOptions } {
  const connection: { tls?: TlsOptions; sasl?: SASLOptions } = {};
  if (options.ssl === true) connection.tls = {};
  else if (typeof options.ssl === 'object') connection.tls = options.ssl;
  const sasl = options.sasl;
  if (sasl !== undefined) {
    const mechanism = SASL_MECHANISMS.get(sasl.mechanism);
    if (mechanism === undefined || !('username' in sasl)) {
      throw new RangeError(
        `sasl.mechanism ${sasl.mechanism} is not supported: use plain, scram-sha-256 or scram-sha-512`,
      );
    }
    connection.sasl = { mechanism, username: sasl.username, password: sasl.password };
  }
  return connection;
}

/**
 * An error with what it gathers: @platformatic/kafka reports a failed request as an AggregateError whose
 * message names only the operation ("Producing messages failed."), the broker's answer in its `errors`.
 */
function errorText(err: unknown): string {
  const parts: string[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (parts.length >= 8) return;
    parts.push(String(e));
    if (depth >= 3 || typeof e !== 'object' || e === null) return;
    const inner = 'errors' in e && Array.isArray(e.errors) ? (e.errors as unknown[]) : [];
    const cause = 'cause' in e && e.cause !== undefined ? [e.cause] : [];
    for (const next of [...inner, ...cause]) visit(next, depth + 1);
  };
  visit(err, 0);
  return [...new Set(parts)].join(' <- ');
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer`);
  return value;
}

function headerValue(value: IHeaders[string]): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  if (last === undefined) return undefined;
  return typeof last === 'string' ? last : last.toString('utf8');
}

function toRecord(topic: string, message: KafkaMessage): BusRecord {
  const headers: Record<string, string> = {};
  for (const [name, raw] of Object.entries(message.headers ?? {})) {
    const value = headerValue(raw);
    if (value !== undefined) headers[name] = value;
  }
  return {
    topic,
    key: message.key?.toString('utf8') ?? '',
    value: message.value?.toString('utf8') ?? '',
    headers,
  };
}

function sizeOf(message: KafkaMessage): number {
  return (message.key?.length ?? 0) + (message.value?.length ?? 0);
}

function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

type Outgoing = MessageToProduce<string, string, string, string>;

interface Pending {
  readonly topic: string;
  readonly message: Outgoing;
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** A started record of a partition, until its handler finished. */
interface Started {
  /** Offset after the record. */
  readonly after: bigint;
  done: boolean;
}

/**
 * One assigned partition of one subscription. Records start in offset order, records of one key one
 * after the other; a record whose key is busy holds back those after it, so everything below `started`
 * was started and a new generation can resume from there.
 */
interface PartitionState {
  readonly partition: number;
  queue: KafkaMessage[];
  head: number;
  bufferedBytes: number;
  /** Offset after the last record queued or started; anything below that is fetched again is skipped. */
  next: bigint | undefined;
  /** Offset after the last record whose handler was started. */
  started: bigint | undefined;
  /** Offset after the last record whose handler finished: what may be committed. */
  handled: bigint | undefined;
  committed: bigint | undefined;
  owned: boolean;
  paused: boolean;
  /** Started records not yet known to be finished, oldest first. */
  readonly active: Started[];
  /** Keys of the records whose handlers run. */
  readonly busy: Set<string>;
  /** Records started since the event loop last had a turn. */
  sinceTurn: number;
  /** Whether a start waits for the next turn of the event loop. */
  yielding: boolean;
}

export interface GroupSettings {
  readonly sessionTimeout: number;
  readonly heartbeatInterval: number;
  readonly rebalanceTimeout: number;
  readonly closeTimeout: number;
  readonly fetchMaxWait: number;
  readonly fetchMinBytes: number;
}

export interface SubscriptionSettings extends GroupSettings {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly group: string;
  readonly handler: BusHandler;
  readonly onError: (err: unknown, record: BusRecord) => void;
  readonly log: KafkaBusLog;
}

/**
 * One consumer group member on one topic. kafkajs fetches the next round for a broker only after every
 * batch of the previous round was handled, so a slow handler would stall all partitions of that broker:
 * batches are instead taken into per-partition queues at once and handled here, and a partition is
 * paused only while its queue is full. Offsets of finished records are committed every 100 ms. Exported
 * for its tests; the package exports only the bus.
 */
export class KafkaSubscription implements BusSubscription {
  readonly #s: SubscriptionSettings;
  readonly #consumer: Consumer;
  readonly #partitions = new Map<number, PartitionState>();
  /**
   * Set from a rebalance (or a consumer crash) until the group is joined again, or a heartbeat shows the
   * assignment still stands: no handler starts.
   */
  #fenced = true;
  /** The generation whose assignment this member holds, learnt from its first heartbeat after a join. */
  #generation: number | undefined;
  #restarting: Promise<void> | undefined;
  #joined: (() => void) | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  /** Whether the commit loop runs; it stops only with no await between its last check and this flag. */
  #committing = false;
  #commitRequests = 0;
  #commitDone: Promise<void> = Promise.resolve();
  /** Ends the commit loop's wait for the interval at once (closing). */
  #commitWake: (() => void) | undefined;
  #flushing = false;
  #starting: Promise<void> | undefined;
  #reviving: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(settings: SubscriptionSettings) {
    this.#s = settings;
    this.#consumer = settings.kafka.consumer({
      groupId: settings.group,
      sessionTimeout: settings.sessionTimeout,
      heartbeatInterval: settings.heartbeatInterval,
      rebalanceTimeout: settings.rebalanceTimeout,
      maxWaitTimeInMs: settings.fetchMaxWait,
      minBytes: settings.fetchMinBytes,
      allowAutoTopicCreation: false,
      // A crashed consumer (broker gone, coordinator moved) always comes back: nothing else would.
      retry: { ...RETRY, restartOnFailure: () => Promise.resolve(true) },
    });
    const { GROUP_JOIN, REBALANCING, CRASH, HEARTBEAT } = this.#consumer.events;
    this.#consumer.on(REBALANCING, () => {
      this.#fenced = true;
    });
    this.#consumer.on(HEARTBEAT, (event) => {
      this.#onHeartbeat(event.payload.groupGenerationId);
    });
    this.#consumer.on(CRASH, (event) => {
      // A restarted consumer joins afresh: what the crashed one held is void.
      this.#generation = undefined;
      this.#fenced = true;
      this.#s.log('warn', 'consumer crashed, restarting', {
        group: settings.group,
        topic: settings.topic,
        error: event.payload.error.message,
      });
      // kafkajs restarts only after errors it deems retriable; a member that stays down loses nothing
      // but stalls its partitions, so the others are restarted here.
      if (!event.payload.restart) this.#revive();
    });
    this.#consumer.on(GROUP_JOIN, (event) => {
      this.#onJoin(event.payload.memberAssignment[settings.topic] ?? []);
    });
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const joined = new Promise<void>((resolve) => {
      this.#joined = resolve;
    });
    await this.#consumer.connect();
    this.#throwIfClosing();
    // A new group starts at the oldest record: what was published before its first member is not lost.
    await this.#consumer.subscribe({ topics: [this.#s.topic], fromBeginning: true });
    this.#throwIfClosing();
    await this.#run();
    // run() also returns when the first join failed and the consumer is restarting.
    const bound = this.#s.rebalanceTimeout + this.#s.sessionTimeout;
    if (!(await settleWithin(joined, bound))) {
      throw new Error(`could not join group ${this.#s.group} on ${this.#s.topic} within ${bound} ms`);
    }
  }

  #run(): Promise<void> {
    return this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => {
        this.#take(payload);
        return Promise.resolve();
      },
    });
  }

  #revive(): void {
    if (this.#closing || this.#reviving) return;
    this.#reviving = setTimeout(() => {
      this.#reviving = undefined;
      if (this.#closing) return;
      this.#run().catch((err: unknown) => {
        this.#s.log('error', 'consumer restart failed', { group: this.#s.group, error: String(err) });
        this.#revive();
      });
    }, REVIVE_AFTER_MS);
  }

  /** Leaves the group and joins it again, which ends with a GROUP_JOIN. */
  #restart(): void {
    this.#restarting ??= (async () => {
      try {
        // Not inside the kafkajs call that reported the heartbeat.
        await new Promise(setImmediate);
        await this.#consumer.stop();
        if (!this.#closing) await this.#run();
      } catch (err) {
        this.#s.log('error', 'consumer restart failed', { group: this.#s.group, error: String(err) });
        this.#revive();
      }
    })().finally(() => (this.#restarting = undefined));
  }

  /**
   * A heartbeat the coordinator accepted, so kafkajs is fetching as a member. Unfenced, it names the
   * generation of the current assignment. Fenced, kafkajs failed to rejoin (a restarted broker still
   * loading the group answers "coordinator loading") and went on in the generation it had, with no
   * GROUP_JOIN to come: in the generation of this member's assignment, that assignment stands; in any
   * other, this member does not know its partitions, so it joins again.
   */
  #onHeartbeat(generation: number): void {
    if (!this.#fenced) {
      this.#generation = generation;
      return;
    }
    if (this.#closing || this.#restarting) return;
    const fields = { group: this.#s.group, topic: this.#s.topic, generation };
    if (this.#generation === generation) {
      this.#s.log('info', 'consumer kept its generation after a failed rejoin', fields);
      this.#unfence();
      return;
    }
    this.#s.log('warn', 'consumer fetching in a generation it has no assignment for, rejoining', fields);
    this.#restart();
  }

  #unfence(): void {
    this.#fenced = false;
    // Commits refused while fenced are sent again; records queued meanwhile start.
    for (const state of this.#partitions.values()) state.committed = undefined;
    this.#scheduleCommit();
    for (const state of this.#partitions.values()) this.#pump(state);
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** A method rather than a check inline: the compiler would keep a narrowing from before an await. */
  #throwIfClosing(): void {
    if (this.#closing) throw new Error('subscription closed');
  }

  async #shutdown(): Promise<void> {
    this.#fenced = true;
    clearTimeout(this.#reviving);
    // Disconnecting in the middle of connect() or run() could leave a consumer running.
    await this.#starting?.catch(() => undefined);
    await this.#restarting;
    // Nothing new is taken while the handlers finish; kafkajs would otherwise fetch the same records again.
    this.#pause();
    const idle =
      this.#inFlight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.#idle = resolve;
          });
    if (!(await settleWithin(idle, this.#s.closeTimeout))) {
      this.#s.log('warn', 'handlers still running at close; their records stay uncommitted', {
        group: this.#s.group,
        topic: this.#s.topic,
      });
    }
    await this.#flushCommits();
    // Leaves the group, so the partitions move to the remaining members at once.
    await this.#consumer.disconnect().catch((err: unknown) => {
      this.#s.log('warn', 'consumer disconnect failed', { error: String(err) });
    });
  }

  #state(partition: number): PartitionState {
    let state = this.#partitions.get(partition);
    if (!state) {
      state = {
        partition,
        queue: [],
        head: 0,
        bufferedBytes: 0,
        next: undefined,
        started: undefined,
        handled: undefined,
        committed: undefined,
        owned: true,
        paused: false,
        active: [],
        busy: new Set(),
        sinceTurn: 0,
        yielding: false,
      };
      this.#partitions.set(partition, state);
    }
    return state;
  }

  /**
   * A new generation: kafkajs fetches every assigned partition again from its committed offset, so what
   * was queued and not started is dropped (it comes again); what was started is skipped when it does.
   */
  #onJoin(assigned: readonly number[]): void {
    const owned = new Set(assigned);
    for (const state of this.#partitions.values()) {
      state.queue = [];
      state.head = 0;
      state.bufferedBytes = 0;
      state.next = state.started;
      state.paused = false;
      state.owned = owned.has(state.partition);
      // Commits sent while the consumer was down are dropped by kafkajs without an error: send again.
      state.committed = undefined;
      if (!state.owned && state.busy.size === 0) this.#partitions.delete(state.partition);
    }
    if (this.#closing) {
      // Joined again while closing: the records stay where they are for the members that remain.
      this.#pause();
      return;
    }
    this.#resume();
    this.#generation = undefined;
    this.#fenced = false;
    this.#scheduleCommit();
    this.#joined?.();
    this.#joined = undefined;
  }

  #take(payload: EachBatchPayload): void {
    if (this.#fenced || this.#closing) return;
    const { batch } = payload;
    const state = this.#state(batch.partition);
    state.owned = true;
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (state.next !== undefined && offset < state.next) continue;
      state.queue.push(message);
      state.bufferedBytes += sizeOf(message);
      state.next = offset + 1n;
    }
    // The fetch position moves on; the committed offset stays behind until the handlers finish.
    payload.resolveOffset(batch.lastOffset());
    if (!state.paused && state.bufferedBytes >= MAX_BUFFERED_BYTES) {
      state.paused = true;
      this.#pause(state.partition);
    }
    this.#pump(state);
  }

  /** Starts what may start now: the next records in order, while their keys are idle and slots free. */
  #pump(state: PartitionState): void {
    while (
      !this.#fenced &&
      !state.yielding &&
      state.head < state.queue.length &&
      state.busy.size < MAX_CONCURRENT_PER_PARTITION
    ) {
      const message = state.queue[state.head] as KafkaMessage;
      const key = message.key?.toString('utf8') ?? '';
      if (state.busy.has(key)) break;
      if (state.sinceTurn >= RECORDS_PER_TURN) {
        state.yielding = true;
        setImmediate(() => {
          state.yielding = false;
          state.sinceTurn = 0;
          this.#pump(state);
        });
        break;
      }
      state.sinceTurn++;
      state.head++;
      state.bufferedBytes -= sizeOf(message);
      const started: Started = { after: BigInt(message.offset) + 1n, done: false };
      state.started = started.after;
      state.active.push(started);
      state.busy.add(key);
      this.#inFlight++;
      void this.#handle(state, message, key, started);
    }
    if (state.head === state.queue.length) {
      state.queue = [];
      state.head = 0;
    }
  }

  async #handle(state: PartitionState, message: KafkaMessage, key: string, started: Started): Promise<void> {
    const record = toRecord(this.#s.topic, message);
    try {
      const { topic, group, handler } = this.#s;
      const consumed = {
        topic,
        headers: record.headers,
        group,
        partition: state.partition,
        offset: message.offset,
      };
      await traceConsume(SYSTEM, consumed, () => handler(record));
    } catch (err) {
      this.#report(err, record);
    }
    this.#inFlight--;
    state.busy.delete(key);
    started.done = true;
    // What may be committed: up to the oldest record still running.
    let finished: Started | undefined;
    while (state.active[0]?.done === true) finished = state.active.shift();
    if (finished !== undefined && state.owned) {
      state.handled = finished.after;
      this.#scheduleCommit();
    }
    if (this.#inFlight === 0) this.#idle?.();
    if (state.paused && state.bufferedBytes < MAX_BUFFERED_BYTES / 2 && !this.#closing) {
      state.paused = false;
      this.#resume(state.partition);
    }
    // Revoked while its last handler ran: a later assignment starts afresh.
    if (!state.owned && state.busy.size === 0) {
      this.#partitions.delete(state.partition);
      return;
    }
    this.#pump(state);
  }

  /** The whole topic, or one partition. Between a crash and the restart kafkajs has no group to pause. */
  #pause(partition?: number): void {
    try {
      this.#consumer.pause([
        partition === undefined
          ? { topic: this.#s.topic }
          : { topic: this.#s.topic, partitions: [partition] },
      ]);
    } catch {
      // The restarted consumer starts unpaused; the next join sets the pauses again.
    }
  }

  #resume(partition?: number): void {
    try {
      this.#consumer.resume([
        partition === undefined
          ? { topic: this.#s.topic }
          : { topic: this.#s.topic, partitions: [partition] },
      ]);
    } catch {
      // Nothing paused in a consumer that is restarting.
    }
  }

  #report(err: unknown, record: BusRecord): void {
    try {
      this.#s.onError(err, record);
    } catch {
      // A failing error callback must not stop the partition.
    }
  }

  /**
   * At most one commit request at a time, each COMMIT_INTERVAL_MS after the previous one; offsets that
   * finish meanwhile go in the next one.
   */
  #scheduleCommit(): void {
    this.#commitRequests++;
    if (this.#committing) return;
    this.#committing = true;
    this.#commitDone = this.#commitLoop();
  }

  async #commitLoop(): Promise<void> {
    for (;;) {
      await this.#commitInterval();
      const requests = this.#commitRequests;
      const due = [...this.#partitions.values()].flatMap((state) =>
        state.owned && state.handled !== undefined && state.handled !== state.committed
          ? [{ state, offset: state.handled }]
          : [],
      );
      let failed = false;
      if (due.length > 0) {
        try {
          await this.#consumer.commitOffsets(
            due.map(({ state, offset }) => ({
              topic: this.#s.topic,
              partition: state.partition,
              offset: offset.toString(),
            })),
          );
          for (const { state, offset } of due) state.committed = offset;
        } catch (err) {
          // Left for the next finished record or the next join; until then a crash replays them.
          failed = true;
          this.#s.log('warn', 'offset commit failed', {
            group: this.#s.group,
            topic: this.#s.topic,
            error: String(err),
          });
        }
      }
      if (due.length === 0 || failed || this.#commitRequests === requests) {
        this.#committing = false;
        return;
      }
    }
  }

  #commitInterval(): Promise<void> {
    if (this.#flushing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#commitWake = undefined;
        resolve();
      }, COMMIT_INTERVAL_MS);
      this.#commitWake = () => {
        clearTimeout(timer);
        this.#commitWake = undefined;
        resolve();
      };
    });
  }

  async #flushCommits(): Promise<void> {
    this.#flushing = true;
    this.#commitWake?.();
    await this.#commitDone;
    this.#scheduleCommit();
    await this.#commitDone;
  }
}

/**
 * The cluster StanzaBus. Publishing: an idempotent producer with acks=all, so `publish` resolves once
 * every in-sync replica has the record; records are keyed by the given key (Java-compatible murmur2
 * partitioning, so every client puts a bare JID on the same partition). Publishes of the linger time,
 * and those that arrive while a produce request is in flight, are sent together in the next one.
 * Consuming: one kafkajs consumer per subscription, offsets committed only after the handler finished,
 * records of one key one at a time, of different keys and partitions concurrently. Replays after a
 * crash or a rebalance are expected. Traced: each
 * publish runs in a PRODUCER span whose W3C trace context goes into the record's headers, next to an
 * ingress time (kept when given), and each handler in a CONSUMER span that continues that trace.
 */
export class KafkaStanzaBus implements StanzaBus {
  readonly #kafka: Kafka;
  readonly #options: KafkaStanzaBusOptions;
  readonly #log: KafkaBusLog;
  readonly #onError: (err: unknown, record: BusRecord) => void;
  readonly #group: GroupSettings;
  readonly #publishRetries: number;
  readonly #publishTimeout: number;
  readonly #linger: number;
  readonly #topics = new Map<string, Promise<void>>();
  readonly #subscriptions = new Set<KafkaSubscription>();
  readonly #queue: Pending[] = [];
  #admin: Promise<Admin> | undefined;
  #producer: RecordProducer<string, string, string, string> | undefined;
  /** TLS and SASL for the producer, in @platformatic/kafka's terms. */
  readonly #connection: { tls?: TlsOptions; sasl?: SASLOptions };
  /** Whether the send loop runs; it stops only when the queue is empty, with no await in between. */
  #sending = false;
  readonly #sent: (() => void)[] = [];
  #closing: Promise<void> | undefined;

  constructor(options: KafkaStanzaBusOptions) {
    if (options.brokers.length === 0) throw new RangeError('brokers must name at least one broker');
    if (options.partitions !== undefined) positiveInteger(options.partitions, 'partitions');
    if (options.replicationFactor !== undefined) {
      positiveInteger(options.replicationFactor, 'replicationFactor');
    }
    this.#group = {
      sessionTimeout: positiveInteger(options.sessionTimeoutMs ?? 10_000, 'sessionTimeoutMs'),
      heartbeatInterval: positiveInteger(options.heartbeatIntervalMs ?? 1_000, 'heartbeatIntervalMs'),
      rebalanceTimeout: positiveInteger(options.rebalanceTimeoutMs ?? 30_000, 'rebalanceTimeoutMs'),
      closeTimeout: positiveInteger(options.closeTimeoutMs ?? 30_000, 'closeTimeoutMs'),
      fetchMaxWait: positiveInteger(options.fetchMaxWaitMs ?? FETCH_MAX_WAIT_MS, 'fetchMaxWaitMs'),
      fetchMinBytes: positiveInteger(options.fetchMinBytes ?? FETCH_MIN_BYTES, 'fetchMinBytes'),
    };
    if (this.#group.heartbeatInterval >= this.#group.sessionTimeout) {
      throw new RangeError('heartbeatIntervalMs must be below sessionTimeoutMs');
    }
    // At least one: a partition whose leader just moved refuses the first request sent to the old one.
    this.#publishRetries = positiveInteger(options.publishRetries ?? RETRY.retries, 'publishRetries');
    this.#publishTimeout = positiveInteger(
      options.publishTimeoutMs ?? PUBLISH_TIMEOUT_MS,
      'publishTimeoutMs',
    );
    const linger = options.lingerMs ?? LINGER_MS;
    if (!Number.isInteger(linger) || linger < 0) throw new RangeError('lingerMs must be a whole number ≥ 0');
    this.#linger = linger;
    this.#options = options;
    this.#connection = producerConnection(options);
    this.#log = options.log ?? defaultLog;
    this.#onError =
      options.onError ??
      ((err, record) => {
        console.error(`stanza bus: handler failed on topic ${record.topic}`, err);
      });
    const log = this.#log;
    this.#kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
      ...(options.sasl === undefined ? {} : { sasl: options.sasl }),
      retry: RETRY,
      logLevel: logLevel.INFO,
      logCreator:
        () =>
        ({
          namespace,
          level,
          log: { message, timestamp: _timestamp, logger: _logger, ...fields },
        }: LogEntry) => {
          // kafkajs logs each error response of a broker at error level, including the retriable ones a
          // starting or rebalancing group answers with; those that matter surface as rejected calls, which
          // the bus reports itself, so they stay at debug here.
          const routine = namespace === 'Connection' && message.startsWith('Response ');
          log(routine ? 'debug' : (LEVELS.get(level) ?? 'debug'), `${namespace}: ${message}`, fields);
        },
    });
  }

  /** Creates a bus and checks that the brokers answer, so a wrong address fails at start-up. */
  static async create(options: KafkaStanzaBusOptions): Promise<KafkaStanzaBus> {
    const bus = new KafkaStanzaBus(options);
    try {
      await bus.#connectedAdmin();
    } catch (err) {
      await bus.close();
      throw err;
    }
    return bus;
  }

  publish(
    topic: string,
    key: string,
    value: string,
    headers?: Readonly<Record<string, string>>,
  ): Promise<void> {
    if (this.#closing) return Promise.reject(new Error('stanza bus closed'));
    const valueBytes = Buffer.byteLength(value);
    return tracePublish(SYSTEM, topic, valueBytes, headers, (carried) => {
      // The record's timestamp is its ingress time on the bus; the header keeps the edge's, when given,
      // through every role that passes the record on.
      const now = Date.now();
      carried[INGRESS_HEADER] ??= String(now);
      const message: Outgoing = { topic, key, value, timestamp: BigInt(now), headers: carried };
      let bytes = Buffer.byteLength(key) + valueBytes;
      for (const [name, text] of Object.entries(carried)) {
        bytes += Buffer.byteLength(name) + Buffer.byteLength(text);
      }
      return new Promise<void>((resolve, reject) => {
        this.#queue.push({ topic, message, bytes, resolve, reject });
        if (!this.#sending) {
          this.#sending = true;
          void this.#send();
        }
      });
    });
  }

  async subscribe(topic: string, group: string, handler: BusHandler): Promise<BusSubscription> {
    this.#throwIfClosing();
    await this.#ensureTopic(topic);
    this.#throwIfClosing();
    const subscription = new KafkaSubscription({
      kafka: this.#kafka,
      topic,
      group,
      handler,
      onError: this.#onError,
      log: this.#log,
      ...this.#group,
    });
    this.#subscriptions.add(subscription);
    try {
      await subscription.start();
      this.#throwIfClosing();
    } catch (err) {
      this.#subscriptions.delete(subscription);
      await subscription.close();
      throw err;
    }
    return {
      close: async () => {
        await subscription.close();
        this.#subscriptions.delete(subscription);
      },
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  #throwIfClosing(): void {
    if (this.#closing) throw new Error('stanza bus closed');
  }

  async #closeAll(): Promise<void> {
    const sent = this.#sending ? new Promise<void>((resolve) => this.#sent.push(resolve)) : Promise.resolve();
    await Promise.all([...[...this.#subscriptions].map((s) => s.close()), sent]);
    this.#subscriptions.clear();
    const [producer, admin] = [this.#producer, this.#admin];
    this.#producer = undefined;
    this.#admin = undefined;
    await Promise.all([
      producer?.close().catch(() => undefined),
      (async () => (await admin?.catch(() => undefined))?.disconnect().catch(() => undefined))(),
    ]);
  }

  #connectedAdmin(): Promise<Admin> {
    if (!this.#admin) {
      const admin = this.#kafka.admin();
      const connecting = admin.connect().then(() => admin);
      this.#admin = connecting;
      connecting.catch(() => {
        if (this.#admin === connecting) this.#admin = undefined;
      });
    }
    return this.#admin;
  }

  #ensureTopic(topic: string): Promise<void> {
    let ready = this.#topics.get(topic);
    if (!ready) {
      ready = this.#connectedAdmin().then(async (admin) => {
        // Returns false when the topic exists already, e.g. created by another process. kafkajs's own
        // waitForLeaders rejects outside any promise we hold when processes create the same topic at
        // once (UNKNOWN_TOPIC_OR_PARTITION while the topic propagates), killing the process; so the
        // leaders are awaited here instead.
        await admin.createTopics({
          waitForLeaders: false,
          topics: [
            {
              topic,
              numPartitions: this.#options.partitions ?? -1,
              replicationFactor: this.#options.replicationFactor ?? -1,
            },
          ],
        });
        await waitForLeaders(admin, topic);
      });
      this.#topics.set(topic, ready);
      ready.catch(() => this.#topics.delete(topic));
    }
    return ready;
  }

  /**
   * The idempotent producer numbers records per partition. When a send fails for good, the broker may
   * still have written it, and the next send would reuse its sequence numbers: the broker would take
   * those records for duplicates, acknowledge them and drop them. So a failed producer is never used
   * again; its successor gets a new producer id.
   */
  #currentProducer(): RecordProducer<string, string, string, string> {
    this.#producer ??= new RecordProducer({
      clientId: this.#options.clientId,
      bootstrapBrokers: [...this.#options.brokers],
      ...this.#connection,
      idempotent: true,
      acks: -1,
      // The send loop has one request in flight at a time, which keeps each partition's order certain.
      maxInflights: 1,
      autocreateTopics: false,
      partitioner: compatibilityPartitioner,
      serializers: stringSerializers,
      retries: this.#publishRetries,
      retryDelay: (_client, _operation, attempt) =>
        Math.min(RETRY.initialRetryTime * 2 ** (attempt - 1), RETRY.maxRetryTime),
    });
    return this.#producer;
  }

  #discardProducer(failed: RecordProducer<string, string, string, string>): void {
    if (this.#producer !== failed) return;
    this.#producer = undefined;
    failed.close(true, () => undefined);
  }

  async #send(): Promise<void> {
    // Publishes of the next few milliseconds go in the same request.
    if (this.#linger > 0) await new Promise((resolve) => setTimeout(resolve, this.#linger));
    while (this.#queue.length > 0) {
      const batch: Pending[] = [];
      let bytes = 0;
      for (const next of this.#queue) {
        if (batch.length > 0 && (batch.length >= MAX_BATCH_RECORDS || bytes + next.bytes > MAX_BATCH_BYTES)) {
          break;
        }
        batch.push(next);
        bytes += next.bytes;
      }
      this.#queue.splice(0, batch.length);
      try {
        await this.#sendBatch(batch);
      } catch (err) {
        for (const pending of batch) pending.reject(err);
      }
    }
    this.#sending = false;
    for (const resolve of this.#sent.splice(0)) resolve();
  }

  async #sendBatch(batch: readonly Pending[]): Promise<void> {
    const byTopic = new Map<string, Pending[]>();
    for (const pending of batch) {
      const list = byTopic.get(pending.topic);
      if (list) list.push(pending);
      else byTopic.set(pending.topic, [pending]);
    }
    const ready: [string, Pending[]][] = [];
    await Promise.all(
      [...byTopic].map(async ([topic, list]) => {
        try {
          await this.#ensureTopic(topic);
          ready.push([topic, list]);
        } catch (err) {
          for (const pending of list) pending.reject(err);
        }
      }),
    );
    if (ready.length === 0) return;
    const producer = this.#currentProducer();
    try {
      const sending = producer.send({ messages: ready.flatMap(([, list]) => list.map((p) => p.message)) });
      // The client bounds each request, yet a producer caught in a broker restart has been seen (with
      // kafkajs) never to settle a send: every publish of the process would wait behind it. Past the
      // bound the producer is replaced and the batch refused, so publishers answer errors, not hang.
      sending.catch(() => undefined);
      if (!(await settleWithin(sending, this.#publishTimeout))) {
        throw new Error(`kafka: no answer to a publish within ${this.#publishTimeout} ms`);
      }
      await sending;
    } catch (err) {
      this.#discardProducer(producer);
      this.#log('warn', 'publish failed', { error: errorText(err) });
      for (const [, list] of ready) for (const pending of list) pending.reject(err);
      return;
    }
    for (const [, list] of ready) for (const pending of list) pending.resolve();
  }
}

const LEADER_WAIT_MS = 30_000;

/** Resolves once every partition of `topic` has a leader, polling metadata (bounded). */
async function waitForLeaders(admin: Admin, topic: string): Promise<void> {
  const deadline = Date.now() + LEADER_WAIT_MS;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = topics[0]?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
    } catch (err) {
      // The topic may not have reached the broker answering yet.
      if (!(err instanceof Error && 'retriable' in err && (err as { retriable: unknown }).retriable === true))
        throw err;
    }
    if (Date.now() > deadline)
      throw new Error(`kafka: topic ${topic} has no leader after ${LEADER_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
