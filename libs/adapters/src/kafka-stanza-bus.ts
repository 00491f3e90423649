// StanzaBus on Apache Kafka (cluster shape): keyed topics, consumer groups, commit after handling.
// Every request goes through @platformatic/kafka (about half kafkajs's CPU per record, and no delay of
// its own between a record's arrival and its handler, see docs/benchmarks.md).
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import {
  Admin,
  Base,
  Consumer,
  IS_CONTROL,
  ListOffsetTimestamps,
  Producer as RecordProducer,
  compatibilityPartitioner,
  stringSerializers,
  type MessageToProduce,
  type SASLOptions,
} from '@platformatic/kafka';
import type { BusHandler, BusRecord, BusSubscription, StanzaBus } from '@starling/ports';
import { INGRESS_HEADER, traceConsume, tracePublish } from '@starling/telemetry';

/** Where the bus reports what happens below the port: client errors, crashes and restarts, rebalances. */
export type KafkaBusLog = (
  level: 'error' | 'warn' | 'info' | 'debug',
  message: string,
  fields: Readonly<Record<string, unknown>>,
) => void;

/** SASL to the brokers; the mechanism in lower case, as Kafka's clients commonly spell it. */
export interface KafkaSasl {
  readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username: string;
  readonly password: string;
}

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
  /** TLS to the brokers: `true` for the system's CAs, or Node's TLS options. */
  readonly ssl?: boolean | TlsOptions;
  /** SASL authentication to the brokers. */
  readonly sasl?: KafkaSasl;
  /** Default: errors to `console.error`, nothing else. */
  readonly log?: KafkaBusLog;
}

// Kafka rejects a record batch above message.max.bytes (1 MiB by default) for one partition; staying
// under half of it for the whole request keeps any partition's share legal.
const MAX_BATCH_BYTES = 512 * 1024;
const MAX_BATCH_RECORDS = 1000;
// Records fetched ahead of the handler, per partition (also the most one fetch asks of a partition); the
// partition is left out of fetches beyond, taken in again below half.
const MAX_BUFFERED_BYTES = 1024 * 1024;
// The most one fetch asks of a leader, all its partitions together.
const MAX_FETCH_BYTES = 8 * 1024 * 1024;
// The broker's answer for a fetch offset it does not have (deleted by retention, or the topic made anew).
const OFFSET_OUT_OF_RANGE = 1;
// Failures in a row of one kind of request before the bus warns of them.
const LOUD_AFTER = 3;
// Handlers that resolve at once would keep the loop in microtasks; sockets need a turn now and then.
const RECORDS_PER_TURN = 256;
// Records of one partition handled at once (each of a different key); a handler mostly waits on I/O.
const MAX_CONCURRENT_PER_PARTITION = 64;
// A fetch waits for this many bytes or FETCH_MAX_WAIT_MS, whichever comes first: under load a request
// then carries many records rather than one or two, and the broker's cost is mostly per request. An
// idle consumer asks a hundred times a second, which costs the broker little.
const FETCH_MIN_BYTES = 32 * 1024;
// Also bounds how late a partition taken in again is fetched.
const FETCH_MAX_WAIT_MS = 10;
// Publishes are held this long for company before a request goes out (Kafka 4's producer default).
const LINGER_MS = 5;
// Offsets of finished records go to the group coordinator at most this often: a commit per record
// cost the broker more than the records themselves. A crash replays at most this much more, and
// replays are expected (duplicates are suppressed by stanza id).
const COMMIT_INTERVAL_MS = 100;
// Clients often back off for long by default (up to 30 s); a bus must be back soon after its broker is.
const RETRY = { retries: 10, initialRetryTime: 100, maxRetryTime: 3_000 } as const;
/** Past the producer's own retries of a send (about 20 s with RETRY) and a request timeout or two. */
const PUBLISH_TIMEOUT_MS = 45_000;
/** The retries of the producer and the admin client, in @platformatic/kafka's terms. */
const RETRIES = {
  retries: RETRY.retries,
  retryDelay: (_client: unknown, _operation: string, attempt: number): number =>
    Math.min(RETRY.initialRetryTime * 2 ** (attempt - 1), RETRY.maxRetryTime),
} as const;
/** `messaging.system` of this bus's spans. */
const SYSTEM = 'kafka';

const defaultLog: KafkaBusLog = (level, message, fields) => {
  if (level === 'error') console.error(`kafka stanza bus: ${message}`, fields);
};

const SASL_MECHANISMS = new Map<string, SASLOptions['mechanism']>([
  ['plain', 'PLAIN'],
  ['scram-sha-256', 'SCRAM-SHA-256'],
  ['scram-sha-512', 'SCRAM-SHA-512'],
]);

/** What every client of the bus needs to reach the brokers; an unknown SASL mechanism is refused. */
interface Connection {
  readonly clientId: string;
  readonly bootstrapBrokers: string[];
  readonly tls?: TlsOptions;
  readonly sasl?: SASLOptions;
}

function connectionOf(options: KafkaStanzaBusOptions): Connection {
  const connection: { clientId: string; bootstrapBrokers: string[]; tls?: TlsOptions; sasl?: SASLOptions } = {
    clientId: options.clientId,
    bootstrapBrokers: [...options.brokers],
  };
  if (options.ssl === true) connection.tls = {};
  else if (typeof options.ssl === 'object') connection.tls = options.ssl;
  // Settings may come from a file, typed or not.
  const sasl: { mechanism: unknown; username: unknown; password: unknown } | undefined = options.sasl;
  if (sasl !== undefined) {
    const mechanism = SASL_MECHANISMS.get(String(sasl.mechanism));
    if (mechanism === undefined) {
      throw new RangeError(
        `sasl.mechanism ${String(sasl.mechanism)} is not supported: use plain, scram-sha-256 or scram-sha-512`,
      );
    }
    if (typeof sasl.username !== 'string' || typeof sasl.password !== 'string') {
      throw new RangeError('sasl.username and sasl.password must be strings');
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

/** Whether every broker answer gathered in `err` may change when asked again. */
function retriable(err: unknown): boolean {
  const find = finder(err);
  return find !== undefined && find('canRetry', false) == null;
}

/** Whether `err`, or an error it gathers, is the broker's `id` (e.g. NOT_COORDINATOR). */
function brokerSaid(err: unknown, id: string): boolean {
  return finder(err)?.('apiId', id) != null;
}

/** A @platformatic/kafka error's search through the errors it gathers; undefined for any other error. */
function finder(err: unknown): ((property: string, value: unknown) => unknown) | undefined {
  if (typeof err !== 'object' || err === null || !('findBy' in err) || typeof err.findBy !== 'function') {
    return undefined;
  }
  return (err.findBy as (property: string, value: unknown) => unknown).bind(err);
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer`);
  return value;
}

function toRecord(topic: string, fetched: Fetched): BusRecord {
  const headers: Record<string, string> = {};
  // A header named twice keeps its last value.
  for (const [name, value] of fetched.headers) {
    if (name !== null && value !== null) headers[name.toString('utf8')] = value.toString('utf8');
  }
  return { topic, key: fetched.key, value: fetched.value?.toString('utf8') ?? '', headers };
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

/** A record taken from its partition's queue (started, or parked behind its key), until all up to it finished. */
interface Taken {
  readonly offset: bigint;
  /** Whether its handler was started; a parked record's was not yet. */
  started: boolean;
  done: boolean;
}

/** A record parked behind another record of its key. */
interface Parked {
  readonly fetched: Fetched;
  readonly taken: Taken;
}

/** A fetched record, queued until its handler starts. */
interface Fetched {
  readonly offset: bigint;
  readonly key: string;
  readonly value: Buffer | null;
  readonly headers: readonly (readonly [Buffer | null, Buffer | null])[];
  readonly bytes: number;
}

/**
 * One assigned partition of one subscription. Records are taken in offset order, records of one key one
 * after the other: a record whose key is busy is parked until the record before it finished, and those
 * of other keys behind it go on. What may be committed is the offset of the oldest record not finished
 * (running, parked, queued or not fetched yet); a new generation fetches again from the oldest record
 * not started and skips the started ones above it.
 */
interface PartitionState {
  readonly partition: number;
  queue: Fetched[];
  head: number;
  /** Bytes of the records queued or parked: the partition is left out of fetches beyond a bound. */
  bufferedBytes: number;
  /** Where the next fetch reads from; unknown until the group's committed offset was read. */
  fetchAt: bigint | undefined;
  /** Offset after the last record queued or skipped; anything below that is fetched again is skipped. */
  next: bigint | undefined;
  /** Offsets at or above `next` whose handlers this member started: skipped when fetched again. */
  readonly skip: Set<bigint>;
  /** Offset after the last record taken from the queue. */
  taken: bigint | undefined;
  /** Offset after the newest record of the finished prefix of `active`. */
  finished: bigint | undefined;
  /** Offset below which every record was handled: what may be committed. */
  handled: bigint | undefined;
  /** The group's committed offset, as last read or committed by this member. */
  committed: bigint | undefined;
  owned: boolean;
  /** Left out of fetches while its queue is full. */
  paused: boolean;
  /** Records taken and not yet part of the finished prefix, in offset order. */
  active: Taken[];
  /** Keys of the records whose handlers run. */
  readonly busy: Set<string>;
  /** Per busy key, its records waiting for the one running, oldest first. */
  readonly parked: Map<string, Parked[]>;
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

/** The group client of one subscription: a @platformatic/kafka consumer, used for membership, fetches and commits. */
export type GroupClient = Consumer;

type FetchResponse = Awaited<ReturnType<GroupClient['fetch']>>;

/** Takes the subscription's listeners off a client it lets go; an error it emits later is dropped. */
function silence(client: GroupClient): void {
  const emitter = client as unknown as NodeJS.EventEmitter;
  emitter.removeAllListeners();
  emitter.on('error', () => undefined);
}

/** Closes a client's connections without leaving its group: for a client whose leave failed. */
function disconnect(client: GroupClient): void {
  (Base.prototype.close as (this: GroupClient, callback: () => void) => void).call(client, () => undefined);
}

/** Puts `taken` into `active` in offset order: at the end, unless it was fetched again after a join. */
function insertTaken(active: Taken[], taken: Taken): void {
  let at = active.length;
  while (at > 0 && (active[at - 1] as Taken).offset > taken.offset) at--;
  if (at === active.length) active.push(taken);
  else active.splice(at, 0, taken);
}

/**
 * For a new generation: the parked records are dropped, to be fetched again from the oldest of them (or
 * from after the last record taken); the records started above that point are skipped when they come.
 */
function resumeFromUnstarted(state: PartitionState): void {
  let resume = state.taken;
  for (const waiting of state.parked.values()) {
    const oldest = waiting[0]?.fetched.offset;
    if (oldest !== undefined && (resume === undefined || oldest < resume)) resume = oldest;
  }
  state.parked.clear();
  state.active = state.active.filter((taken) => taken.started);
  if (resume !== undefined) {
    for (const offset of state.skip) if (offset < resume) state.skip.delete(offset);
    for (const taken of state.active) if (taken.offset >= resume) state.skip.add(taken.offset);
  }
  state.taken = resume;
  state.next = resume;
}

export interface SubscriptionSettings extends GroupSettings {
  /** Makes a client for the group; a new one replaces a client whose membership failed. */
  readonly client: () => GroupClient;
  readonly topic: string;
  readonly group: string;
  readonly handler: BusHandler;
  readonly onError: (err: unknown, record: BusRecord) => void;
  readonly log: KafkaBusLog;
}

/** The partly parsed answer a refused request carries, when the broker answered at all. */
function answerOf(err: unknown): FetchResponse | undefined {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth++) {
    if (
      'response' in e &&
      typeof e.response === 'object' &&
      e.response !== null &&
      'responses' in e.response
    ) {
      return e.response as FetchResponse;
    }
    const inner = 'errors' in e && Array.isArray(e.errors) ? (e.errors as unknown[]) : [];
    e = inner[inner.length - 1];
  }
  return undefined;
}

/** Milliseconds before attempt `n` (from 0) of something that failed: 100, 200, 400 … 3 000. */
function backoff(attempt: number): number {
  return Math.min(RETRY.initialRetryTime * 2 ** Math.min(attempt, 10), RETRY.maxRetryTime);
}

/**
 * How loud the `attempt`th failure in a row (from 0) is: a broker starting, a leader or a coordinator
 * moving answers a few requests with errors in the ordinary course; a warning tells of a failure that
 * lasted (about 700 ms, with `backoff`), once.
 */
function failureLevel(attempt: number): 'warn' | 'debug' {
  return attempt === LOUD_AFTER ? 'warn' : 'debug';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Closes a client no longer used, leaving its group when the coordinator answers; only its connections otherwise. */
function retire(client: GroupClient): void {
  silence(client);
  client.close(true, (err) => {
    // Leaving failed (the coordinator is gone or moved): the client stays open after a failed close.
    if (err) disconnect(client);
  });
}

/**
 * One consumer group member on one topic. Membership, fetches and commits go through a
 * @platformatic/kafka consumer; the fetching is done here, per partition leader, so that a partition
 * whose handlers fall behind is left out of fetches (its queue full) while the others go on. Offsets of
 * finished records are committed every 100 ms. Each join fetches every assigned partition from the
 * group's committed offset (the oldest offset when there is none), skipping what this member had started
 * already. A client whose membership failed (its rejoin refused, its coordinator moved or silent past
 * the session timeout) is replaced by a new one, which joins as a new member. Exported for its tests;
 * the package exports only the bus.
 */
export class KafkaSubscription implements BusSubscription {
  readonly #s: SubscriptionSettings;
  #client: GroupClient | undefined;
  readonly #partitions = new Map<number, PartitionState>();
  /** Set from the start of a rebalance (or a failed membership) until the next join: no handler starts. */
  #fenced = true;
  /** Counts joins: offset lookups and fetches begun for an earlier assignment are dropped. */
  #round = 0;
  /** Leaders with a fetch under way (or waiting to retry), by the client that asked. */
  readonly #fetching = new Map<number, GroupClient>();
  /** Whether a metadata lookup for the next fetches is under way, and whether another one is wanted. */
  #planning = false;
  #planAgain = false;
  /** Counts fetches, to put another partition first in each. */
  #rotation = 0;
  /** Fetches that failed in a row; a streak that lasted is logged as a warning, its end too. */
  #fetchFailures = 0;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** When the group last confirmed this member (a heartbeat accepted, or a join). */
  #confirmed = 0;
  #renewing: Promise<void> | undefined;
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
  /** Ends a start that waits for its first join: the subscription closes. */
  #stopStarting: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(settings: SubscriptionSettings) {
    this.#s = settings;
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const joined = new Promise<void>((resolve) => {
      this.#joined = resolve;
    });
    const closed = new Promise<void>((resolve) => {
      this.#stopStarting = resolve;
    });
    this.#renew();
    const bound = this.#s.rebalanceTimeout + this.#s.sessionTimeout;
    if (!(await settleWithin(Promise.race([joined, closed]), bound))) {
      throw new Error(`could not join group ${this.#s.group} on ${this.#s.topic} within ${bound} ms`);
    }
    this.#throwIfClosing();
  }

  /** A method rather than a check inline: the compiler would keep a narrowing from before an await. */
  #throwIfClosing(): void {
    if (this.#closing) throw new Error('subscription closed');
  }

  #fields(extra?: Readonly<Record<string, unknown>>): Record<string, unknown> {
    return { group: this.#s.group, topic: this.#s.topic, ...extra };
  }

  /** Replaces the client by a new one that joins the group, again and again until one has joined. */
  #renew(): void {
    if (this.#closing || this.#renewing) return;
    this.#fenced = true;
    const old = this.#client;
    this.#client = undefined;
    if (old) retire(old);
    this.#renewing = (async () => {
      for (let attempt = 0; !this.#closing; attempt++) {
        const client = this.#newClient();
        this.#client = client;
        try {
          // Ends with a consumer:group:join, which sets the assignment and starts the fetches.
          await client.joinGroup({});
          return;
        } catch (err) {
          if (this.#client === client) this.#client = undefined;
          retire(client);
          this.#s.log(failureLevel(attempt), 'joining the group failed, trying again', {
            ...this.#fields(),
            error: errorText(err),
          });
          await sleep(backoff(attempt));
        }
      }
    })().finally(() => (this.#renewing = undefined));
  }

  #newClient(): GroupClient {
    const client = this.#s.client();
    client.topics.track(this.#s.topic);
    const current = (): boolean => this.#client === client && !this.#closing;
    client.on('consumer:group:join', (payload) => {
      if (this.#client !== client) return;
      const partitions = payload.assignments?.find((a) => a.topic === this.#s.topic)?.partitions ?? [];
      // Each generation once: a rebalance in the logs explains a pause in consuming.
      this.#s.log('info', 'joined the group', {
        ...this.#fields(),
        generation: payload.generationId,
        member: payload.memberId,
        partitions,
      });
      this.#onJoin(client, partitions);
    });
    // A rebalance is under way (a heartbeat, commit or join was answered so), or a join or rejoin starts:
    // what this member holds may be given to another one.
    client.on('consumer:group:rebalance', () => {
      if (current()) this.#fenced = true;
    });
    client.on('client:performWithRetry', (operation: string) => {
      if (current() && (operation === 'joinGroup' || operation === 'rejoinGroup')) this.#fenced = true;
    });
    client.on('consumer:heartbeat:end', () => {
      if (current()) this.#confirmed = Date.now();
    });
    client.on('consumer:heartbeat:error', ({ error }) => {
      if (!current()) return;
      // The client keeps its coordinator for good; one that moved answers every heartbeat so.
      const moved = brokerSaid(error, 'NOT_COORDINATOR') || brokerSaid(error, 'COORDINATOR_NOT_AVAILABLE');
      const silent = Date.now() - this.#confirmed > this.#s.sessionTimeout;
      if (!moved && !silent) return;
      this.#s.log(
        'warn',
        moved ? 'group coordinator moved, joining again' : 'group lost this member, joining again',
        {
          ...this.#fields(),
          error: errorText(error),
        },
      );
      this.#renew();
    });
    // A rejoin after a rebalance failed: the client stays outside the group, heartbeats stopped.
    client.on('error', (err: unknown) => {
      if (!current()) return;
      this.#s.log('warn', 'rejoining the group failed, joining with a new member', {
        ...this.#fields(),
        error: errorText(err),
      });
      this.#renew();
    });
    return client;
  }

  /**
   * A new generation. Each assigned partition is fetched again from the group's committed offset: what
   * was queued or parked and not started is dropped (it comes again); what was started is skipped when it
   * does.
   */
  #onJoin(client: GroupClient, partitions: readonly number[]): void {
    const owned = new Set(partitions);
    this.#round++;
    this.#confirmed = Date.now();
    for (const state of this.#partitions.values()) {
      resumeFromUnstarted(state);
      state.queue = [];
      state.head = 0;
      state.bufferedBytes = 0;
      state.fetchAt = undefined;
      state.paused = false;
      state.owned = owned.has(state.partition);
      // Commits refused in the old generation are sent again in this one.
      state.committed = undefined;
      if (!state.owned && state.busy.size === 0) this.#partitions.delete(state.partition);
    }
    for (const partition of owned) this.#state(partition).owned = true;
    // Joined again while closing: the records stay where they are for the members that remain.
    if (this.#closing) return;
    this.#fenced = false;
    this.#scheduleCommit();
    this.#joined?.();
    this.#joined = undefined;
    void this.#position(client, this.#round, [...owned]);
  }

  /** Sets where each of `partitions` is fetched from, then fetches: retried until it worked or a new join came. */
  async #position(client: GroupClient, round: number, partitions: readonly number[]): Promise<void> {
    const { topic } = this.#s;
    const stale = (): boolean =>
      round !== this.#round || client !== this.#client || this.#closing !== undefined;
    for (let attempt = 0; partitions.length > 0; attempt++) {
      try {
        const committed = (
          await client.listCommittedOffsets({ topics: [{ topic, partitions: [...partitions] }] })
        ).get(topic);
        if (stale()) return;
        const none: number[] = [];
        for (const partition of partitions) {
          const state = this.#partitions.get(partition);
          const offset = committed?.[partition];
          if (state === undefined) continue;
          if (offset === undefined || offset < 0n) none.push(partition);
          else {
            state.fetchAt = state.next !== undefined && state.next > offset ? state.next : offset;
            state.committed = offset;
          }
        }
        // A group's first member starts at the oldest record: what was published before it is not lost.
        if (none.length > 0) await this.#fromOldest(client, round, none);
        if (stale()) return;
        this.#fetch();
        return;
      } catch (err) {
        if (stale()) return;
        this.#s.log(failureLevel(attempt), 'reading committed offsets failed, trying again', {
          ...this.#fields(),
          error: errorText(err),
        });
        await sleep(backoff(attempt));
        if (stale()) return;
      }
    }
  }

  /** Sets the fetch position of `partitions` to the oldest offset the broker still has (unless a join came). */
  async #fromOldest(client: GroupClient, round: number, partitions: readonly number[]): Promise<void> {
    const { topic } = this.#s;
    const oldest = (
      await client.listOffsets({
        topics: [topic],
        partitions: { [topic]: [...partitions] },
        timestamp: ListOffsetTimestamps.EARLIEST,
      })
    ).get(topic);
    if (client !== this.#client || round !== this.#round) return;
    for (const partition of partitions) {
      const state = this.#partitions.get(partition);
      const offset = oldest?.[partition];
      if (state?.owned && offset !== undefined) state.fetchAt = offset;
    }
  }

  /** Sends a fetch to each leader that has none under way, for the owned partitions with room in their queue. */
  #fetch(): void {
    const client = this.#client;
    if (client === undefined || this.#fenced || this.#closing) return;
    if (this.#planning) {
      this.#planAgain = true;
      return;
    }
    this.#planning = true;
    const round = this.#round;
    const { topic } = this.#s;
    client.metadata({ topics: [topic] }).then(
      (metadata) => {
        this.#planning = false;
        if (client !== this.#client || round !== this.#round || this.#fenced || this.#closing) return;
        const info = metadata.topics.get(topic);
        const byLeader = new Map<number, PartitionState[]>();
        let leaderless = false;
        for (const state of this.#partitions.values()) {
          if (!state.owned || state.paused || state.fetchAt === undefined) continue;
          const leader = info?.partitions[state.partition]?.leader ?? -1;
          if (leader < 0) leaderless = true;
          else if (!this.#fetching.has(leader)) {
            const states = byLeader.get(leader);
            if (states === undefined) byLeader.set(leader, [state]);
            else states.push(state);
          }
        }
        if (info !== undefined) {
          for (const [leader, states] of byLeader) {
            // A broker answers a partition's batch above partitionMaxBytes only for the first partition
            // with records in the request: each fetch puts another partition first, so none waits for good.
            const first = this.#rotation++ % states.length;
            const rotated = [...states.slice(first), ...states.slice(0, first)];
            this.#fetchFrom(client, round, leader, info.id, rotated);
          }
        }
        if (leaderless || info === undefined)
          this.#fetchLater(client, undefined, new Error('a partition has no leader'));
        else if (this.#planAgain) {
          this.#planAgain = false;
          this.#fetch();
        }
      },
      (err: unknown) => {
        this.#planning = false;
        this.#fetchLater(client, undefined, err);
      },
    );
  }

  #fetchFrom(
    client: GroupClient,
    round: number,
    leader: number,
    topicId: string,
    states: readonly PartitionState[],
  ): void {
    const asked = new Map(states.map((state) => [state.partition, { state, at: state.fetchAt as bigint }]));
    this.#fetching.set(leader, client);
    client
      .fetch({
        node: leader,
        topics: [
          {
            topicId,
            partitions: [...asked.values()].map(({ state, at }) => ({
              partition: state.partition,
              fetchOffset: at,
              partitionMaxBytes: MAX_BUFFERED_BYTES,
              // No leader epoch: the broker then checks none (as kafkajs did), and a stale one cannot fail a fetch.
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            })),
          },
        ],
        maxWaitTime: this.#s.fetchMaxWait,
        minBytes: this.#s.fetchMinBytes,
        maxBytes: MAX_FETCH_BYTES,
      })
      .then(
        (response) => {
          if (this.#fetching.get(leader) === client) this.#fetching.delete(leader);
          if (client !== this.#client) return;
          // Asked for an earlier assignment: the fetches of this one may have waited for this leader.
          if (round !== this.#round) {
            this.#fetch();
            return;
          }
          if (this.#fetchFailures > LOUD_AFTER) {
            this.#s.log('info', 'fetching again', this.#fields({ failures: this.#fetchFailures }));
          }
          this.#fetchFailures = 0;
          this.#take(response, asked);
          this.#fetch();
        },
        (err: unknown) => {
          if (client === this.#client && round === this.#round) {
            this.#fetchLater(client, leader, err, asked);
            return;
          }
          if (this.#fetching.get(leader) === client) this.#fetching.delete(leader);
          if (client === this.#client) this.#fetch();
        },
      );
  }

  /**
   * A fetch (or the metadata for one) failed. Partitions whose offset is gone (deleted by retention, or
   * a topic made anew) start again from the oldest record; otherwise the metadata is read again and the
   * fetch retried after a back-off, during which that leader gets no other fetch.
   */
  #fetchLater(
    client: GroupClient,
    leader: number | undefined,
    err: unknown,
    asked?: ReadonlyMap<number, { state: PartitionState; at: bigint }>,
  ): void {
    const failures = this.#fetchFailures++;
    this.#s.log(failureLevel(failures), 'fetch failed, trying again', {
      ...this.#fields(),
      error: errorText(err),
    });
    client.clearMetadata();
    const gone: number[] = [];
    for (const topic of answerOf(err)?.responses ?? []) {
      for (const answer of topic.partitions) {
        const state = asked?.get(answer.partitionIndex)?.state;
        if (answer.errorCode === OFFSET_OUT_OF_RANGE && state !== undefined) {
          state.fetchAt = undefined;
          gone.push(answer.partitionIndex);
        }
      }
    }
    const round = this.#round;
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        if (leader !== undefined && this.#fetching.get(leader) === client) this.#fetching.delete(leader);
        if (client !== this.#client) return;
        if (gone.length === 0 || round !== this.#round) {
          this.#fetch();
          return;
        }
        this.#s.log('warn', 'committed offsets no longer on the broker; starting from the oldest record', {
          ...this.#fields(),
          partitions: gone,
        });
        this.#restartFromOldest(client, round, gone, 0);
      },
      gone.length > 0 ? 0 : backoff(failures),
    );
    this.#timers.add(timer);
  }

  /** Fetches `partitions` from the oldest record the broker has, once it said which: asked until it does. */
  #restartFromOldest(
    client: GroupClient,
    round: number,
    partitions: readonly number[],
    attempt: number,
  ): void {
    this.#fromOldest(client, round, partitions).then(
      () => this.#fetch(),
      (err: unknown) => {
        if (client !== this.#client || round !== this.#round || this.#closing) return;
        this.#s.log(failureLevel(attempt), 'reading the oldest offsets failed, trying again', {
          ...this.#fields(),
          error: errorText(err),
        });
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.#restartFromOldest(client, round, partitions, attempt + 1);
        }, backoff(attempt));
        this.#timers.add(timer);
      },
    );
  }

  /** Queues what a fetch brought, for the partitions still at the offset it asked for. */
  #take(response: FetchResponse, asked: ReadonlyMap<number, { state: PartitionState; at: bigint }>): void {
    for (const topic of response.responses) {
      for (const answer of topic.partitions) {
        const entry = asked.get(answer.partitionIndex);
        if (entry === undefined || answer.records === undefined) continue;
        const { state, at } = entry;
        // Revoked, or moved to another offset, while the fetch was under way.
        if (!state.owned || state.fetchAt !== at) continue;
        let fetchAt = at;
        for (const batch of answer.records) {
          const first = batch.firstOffset;
          if ((batch.attributes & IS_CONTROL) === 0) {
            for (const record of batch.records) {
              const offset = first + BigInt(record.offsetDelta);
              // A compressed batch may begin before the offset asked for.
              if (offset < at || (state.next !== undefined && offset < state.next)) continue;
              // Started by this member before the last join.
              if (state.skip.delete(offset)) {
                state.next = offset + 1n;
                continue;
              }
              const bytes = (record.key?.length ?? 0) + (record.value?.length ?? 0);
              state.queue.push({
                offset,
                key: record.key?.toString('utf8') ?? '',
                value: record.value,
                headers: record.headers,
                bytes,
              });
              state.bufferedBytes += bytes;
              state.next = offset + 1n;
            }
          }
          const after = first + BigInt(batch.lastOffsetDelta) + 1n;
          if (after > fetchAt) fetchAt = after;
        }
        state.fetchAt = fetchAt;
        if (state.bufferedBytes >= MAX_BUFFERED_BYTES) state.paused = true;
        this.#pump(state);
      }
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    // No fetch and no handler starts from here on.
    this.#fenced = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    // A join under way is not awaited (it may wait for the other members up to the rebalance timeout):
    // its client is closed below, and the join's answer, should one come, is ignored.
    this.#stopStarting?.();
    await this.#starting?.catch(() => undefined);
    const idle =
      this.#inFlight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.#idle = resolve;
          });
    if (!(await settleWithin(idle, this.#s.closeTimeout))) {
      this.#s.log('warn', 'handlers still running at close; their records stay uncommitted', this.#fields());
    }
    await this.#flushCommits();
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    silence(client);
    // Leaves the group, so the partitions move to the remaining members at once.
    await new Promise<void>((resolve) => {
      client.close(true, (err) => {
        if (err) {
          this.#s.log('warn', 'leaving the group failed', { ...this.#fields(), error: errorText(err) });
          disconnect(client);
        }
        resolve();
      });
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
        fetchAt: undefined,
        next: undefined,
        skip: new Set(),
        taken: undefined,
        finished: undefined,
        handled: undefined,
        committed: undefined,
        owned: true,
        paused: false,
        active: [],
        busy: new Set(),
        parked: new Map(),
        sinceTurn: 0,
        yielding: false,
      };
      this.#partitions.set(partition, state);
    }
    return state;
  }

  /**
   * Takes the next records in order while slots are free: each starts, unless its key is busy, in which
   * case it is parked behind the record running.
   */
  #pump(state: PartitionState): void {
    while (
      !this.#fenced &&
      !state.yielding &&
      state.head < state.queue.length &&
      state.busy.size < MAX_CONCURRENT_PER_PARTITION
    ) {
      const fetched = state.queue[state.head] as Fetched;
      if (state.sinceTurn >= RECORDS_PER_TURN) {
        state.yielding = true;
        setImmediate(() => {
          state.yielding = false;
          state.sinceTurn = 0;
          this.#pump(state);
        });
        break;
      }
      state.head++;
      state.taken = fetched.offset + 1n;
      const taken: Taken = { offset: fetched.offset, started: false, done: false };
      insertTaken(state.active, taken);
      if (state.busy.has(fetched.key)) {
        const waiting = state.parked.get(fetched.key);
        if (waiting === undefined) state.parked.set(fetched.key, [{ fetched, taken }]);
        else waiting.push({ fetched, taken });
        continue;
      }
      state.sinceTurn++;
      state.busy.add(fetched.key);
      this.#run(state, fetched, taken);
    }
    if (state.head === state.queue.length) {
      state.queue = [];
      state.head = 0;
    }
  }

  /** Runs the handler of a record whose key this partition holds busy for it. */
  #run(state: PartitionState, fetched: Fetched, taken: Taken): void {
    taken.started = true;
    state.bufferedBytes -= fetched.bytes;
    this.#inFlight++;
    void this.#handle(state, fetched, taken);
  }

  async #handle(state: PartitionState, fetched: Fetched, taken: Taken): Promise<void> {
    const record = toRecord(this.#s.topic, fetched);
    try {
      const { topic, group, handler } = this.#s;
      const consumed = {
        topic,
        headers: record.headers,
        group,
        partition: state.partition,
        offset: fetched.offset.toString(),
      };
      await traceConsume(SYSTEM, consumed, () => handler(record));
    } catch (err) {
      this.#report(err, record);
    }
    this.#inFlight--;
    taken.done = true;
    // The key's next record goes on, unless a rebalance is under way (the next join drops it).
    const waiting = state.parked.get(fetched.key);
    const next = this.#fenced ? undefined : waiting?.shift();
    if (waiting?.length === 0) state.parked.delete(fetched.key);
    if (next !== undefined) this.#run(state, next.fetched, next.taken);
    else state.busy.delete(fetched.key);
    this.#advance(state);
    if (this.#inFlight === 0) this.#idle?.();
    if (state.paused && state.bufferedBytes < MAX_BUFFERED_BYTES / 2) {
      state.paused = false;
      this.#fetch();
    }
    // Revoked while its last handler ran: a later assignment starts afresh.
    if (!state.owned && state.busy.size === 0) {
      this.#partitions.delete(state.partition);
      return;
    }
    this.#pump(state);
  }

  /**
   * Moves what may be committed up to the oldest record not finished: taken and running or parked,
   * queued, or not fetched yet (after a join, records below those started may come again).
   */
  #advance(state: PartitionState): void {
    while (state.active[0]?.done === true) {
      const after = (state.active.shift() as Taken).offset + 1n;
      if (state.finished === undefined || after > state.finished) state.finished = after;
    }
    if (state.finished === undefined || !state.owned) return;
    let point = state.finished;
    const unfinished = state.active[0]?.offset;
    if (unfinished !== undefined && unfinished < point) point = unfinished;
    const queued = state.queue[state.head]?.offset;
    if (queued !== undefined && queued < point) point = queued;
    const unfetched = state.fetchAt ?? state.next;
    if (unfetched !== undefined && unfetched < point) point = unfetched;
    if (state.handled === undefined || point > state.handled) {
      state.handled = point;
      this.#scheduleCommit();
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
      const client = this.#client;
      const due = [...this.#partitions.values()].flatMap((state) =>
        state.owned &&
        state.handled !== undefined &&
        (state.committed === undefined || state.handled > state.committed)
          ? [{ state, offset: state.handled }]
          : [],
      );
      let failed = false;
      // Also while a rebalance is under way: the coordinator takes commits of the generation until it
      // completes, and each one taken is a record the next owner does not handle again.
      if (due.length > 0 && client !== undefined) {
        try {
          await client.commit({
            offsets: due.map(({ state, offset }) => ({
              topic: this.#s.topic,
              partition: state.partition,
              offset,
              leaderEpoch: -1,
            })),
          });
          for (const { state, offset } of due) state.committed = offset;
        } catch (err) {
          // Left for the next finished record or the next join; until then a crash replays them.
          failed = true;
          this.#s.log('warn', 'offset commit failed', { ...this.#fields(), error: errorText(err) });
        }
      }
      if (due.length === 0 || client === undefined || failed || this.#commitRequests === requests) {
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
 * Consuming: one group member per subscription, offsets committed only after the handler finished,
 * records of one key one at a time, of different keys and partitions concurrently. Replays after a
 * crash or a rebalance are expected. Traced: each publish runs in a PRODUCER span whose W3C trace context goes into the record's headers, next to an
 * ingress time (kept when given), and each handler in a CONSUMER span that continues that trace.
 */
export class KafkaStanzaBus implements StanzaBus {
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
  readonly #admin: Admin;
  #producer: RecordProducer<string, string, string, string> | undefined;
  readonly #connection: Connection;
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
    this.#connection = connectionOf(options);
    this.#log = options.log ?? defaultLog;
    this.#onError =
      options.onError ??
      ((err, record) => {
        console.error(`stanza bus: handler failed on topic ${record.topic}`, err);
      });
    this.#admin = new Admin({ ...this.#connection, ...RETRIES });
    this.#admin.on('error', (err: unknown) =>
      this.#log('warn', 'admin client error', { error: errorText(err) }),
    );
  }

  /** Creates a bus and checks that the brokers answer, so a wrong address fails at start-up. */
  static async create(options: KafkaStanzaBusOptions): Promise<KafkaStanzaBus> {
    const bus = new KafkaStanzaBus(options);
    try {
      await bus.#admin.metadata({ topics: [] });
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
    const { sessionTimeout, heartbeatInterval, rebalanceTimeout } = this.#group;
    const subscription = new KafkaSubscription({
      client: () =>
        new Consumer({
          ...this.#connection,
          groupId: group,
          sessionTimeout,
          heartbeatInterval,
          rebalanceTimeout,
          // kafkajs's name for the same round-robin assignment: members of releases that consumed
          // through kafkajs and of this one can share a group during a rolling upgrade.
          protocols: [{ name: 'RoundRobinAssigner', version: 0 }],
          // The subscription retries itself, and in its own way: a fetch must not insist on a leader
          // that moved, nor a commit rejoin the group on its own.
          retries: 0,
        }),
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
    const producer = this.#producer;
    this.#producer = undefined;
    await Promise.all([producer?.close().catch(() => undefined), this.#admin.close().catch(() => undefined)]);
  }

  #ensureTopic(topic: string): Promise<void> {
    let ready = this.#topics.get(topic);
    if (!ready) {
      ready = (async () => {
        try {
          await this.#admin.createTopics({
            topics: [topic],
            partitions: this.#options.partitions ?? -1,
            replicas: this.#options.replicationFactor ?? -1,
          });
        } catch (err) {
          // Created already, by another process or an earlier run.
          if (!brokerSaid(err, 'TOPIC_ALREADY_EXISTS')) throw err;
        }
        await waitForLeaders(this.#admin, topic);
      })();
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
      ...this.#connection,
      idempotent: true,
      acks: -1,
      // The send loop has one request in flight at a time, which keeps each partition's order certain.
      maxInflights: 1,
      autocreateTopics: false,
      partitioner: compatibilityPartitioner,
      serializers: stringSerializers,
      ...RETRIES,
      retries: this.#publishRetries,
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
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
      const partitions = metadata.topics.get(topic)?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
    } catch (err) {
      // The topic may not have reached the broker answering yet.
      if (!retriable(err)) throw err;
    }
    if (Date.now() > deadline)
      throw new Error(`kafka: topic ${topic} has no leader after ${LEADER_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
