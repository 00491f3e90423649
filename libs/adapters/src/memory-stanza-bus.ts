// StanzaBus in process (embedded shape): Kafka's model of keyed partitions and consumer groups, no broker.
import type { BusHandler, BusRecord, BusSubscription, StanzaBus } from '@starling/ports';
import { traceConsume, tracePublish } from '@starling/telemetry';

export interface MemoryStanzaBusOptions {
  /** Partitions per topic; the records of one key share one. Default 16. */
  readonly partitions?: number;
  /** Told about each handler rejection; the record then counts as consumed. Default: `console.error`. */
  readonly onError?: (err: unknown, record: BusRecord) => void;
  /**
   * Records that may wait with nobody to take them (a topic no group consumes yet, or a group whose
   * members all left); publish rejects beyond. Default 10 000.
   */
  readonly maxBuffered?: number;
  /**
   * How long close() lets the subscribed groups work through their queued records (and what their
   * handlers publish meanwhile) before it stops taking records. Default 10 000 ms.
   */
  readonly drainTimeoutMs?: number;
  /**
   * Records queued for one group (not yet handed to a handler) at which the publishes of `ingress()` start
   * to wait; they go on once every group is down to half of it. Default 20 000.
   */
  readonly highWater?: number;
  /**
   * The same, counted in characters of the records' values: a few thousand large stanzas hold as much
   * memory as millions of small ones. Default 32 Mi (32 to 64 MB of strings).
   */
  readonly highWaterChars?: number;
  /** Told when ingress starts waiting (with the group that is behind) and when it goes on (`undefined`). */
  readonly onPressure?: (behind: Pressure | undefined) => void;
}

/** A group too far behind, which holds back the publishes of `ingress()`. */
export interface Pressure {
  readonly topic: string;
  readonly group: string;
  readonly queued: number;
  /** Characters of the values of those records. */
  readonly queuedChars: number;
}

const DONE: Promise<void> = Promise.resolve();
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
/** `messaging.system` of this bus's spans. */
const SYSTEM = 'starling-memory';
// Handlers that resolve at once would keep the loop in microtasks; sockets need a turn now and then.
const RECORDS_PER_TURN = 256;
const COMPACT_AFTER = 1024;
/** How often close() looks whether the groups ran dry. */
const DRAIN_CHECK_MS = 5;
/**
 * Handlers of one partition running at once (of different keys). Lets the handlers of many keys be under
 * way together, so that a consumer gathering work (the archive's batched writes) sees more than one
 * record per partition.
 */
const MAX_CONCURRENT_PER_PARTITION = 64;

interface Member {
  readonly handler: BusHandler;
  inFlight: number;
  idle: (() => void) | undefined;
  left: Promise<void> | undefined;
}

/**
 * One partition of one group. Records of one key start one after the other, in publish order; a key has
 * at most one record in `records` or running, the others wait in `parked`, so a busy key holds back only
 * its own records, never those of other keys behind it (records of one user often come in twos: the
 * archive's copies of a message both ways, when two users write to each other at once).
 */
interface PartitionQueue {
  readonly index: number;
  /** The next record of each key that has one and is idle, in the order they became next. */
  records: (BusRecord | undefined)[];
  head: number;
  /** Keys with a record in `records` or running. */
  readonly claimed: Set<string>;
  /** Per claimed key, its later records in publish order. */
  readonly parked: Map<string, BusRecord[]>;
  /** Handlers of this partition running. */
  running: number;
  /** Records started since the event loop last had a turn. */
  sinceTurn: number;
  /** Whether a start is already due, in a microtask or at the next turn of the event loop. */
  scheduled: boolean;
}

interface Group {
  readonly topic: string;
  readonly name: string;
  readonly members: Member[];
  readonly queues: (PartitionQueue | undefined)[];
  /** Records enqueued and not yet handed to a handler. */
  waiting: number;
  /** Characters of their values. */
  waitingChars: number;
}

interface Topic {
  readonly groups: Map<string, Group>;
  /** Records published before any group subscribed; the first group takes them. */
  early: BusRecord[];
}

/** An ingress publish waiting for the groups to catch up. */
interface Held {
  readonly record: BusRecord;
  readonly resolve: (appended: Promise<void>) => void;
  readonly reject: (err: Error) => void;
}

/** Same idea as Kafka's default partitioner (a hash of the key), with FNV-1a instead of murmur2. */
function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}

function compact(queue: PartitionQueue): void {
  if (queue.head === 0) return;
  queue.records = queue.head === queue.records.length ? [] : queue.records.slice(queue.head);
  queue.head = 0;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer`);
  return value;
}

/**
 * The embedded StanzaBus. Handlers always run after publish() returned, never inside its call stack, so
 * code that is only correct with synchronous delivery fails here as it would on Kafka. A record is
 * durable once it is in memory, so publish resolves at once; close() first lets the groups work through
 * what is queued, since nothing else would keep it. Traced like the Kafka bus: the publish's trace context
 * travels in the record's headers and each handler runs in a span that continues it.
 *
 * Memory is the bound, so a group that falls behind must slow down what comes in: the view `ingress()`,
 * given to the edge, holds its publishes (in order) while a group has `highWater` records (or
 * `highWaterChars` characters of them) queued, and the edge stops reading from connections whose
 * publishes wait. Handlers' own publishes never wait: roles publish to each other in a cycle (router to
 * presence, presence to itself), and a handler waiting for room that only handlers can make would stop
 * them all. What handlers publish is bounded by what came in.
 */
export class MemoryStanzaBus implements StanzaBus {
  readonly #partitions: number;
  readonly #onError: (err: unknown, record: BusRecord) => void;
  readonly #maxBuffered: number;
  readonly #drainTimeout: number;
  readonly #highWater: number;
  readonly #lowWater: number;
  readonly #highWaterChars: number;
  readonly #lowWaterChars: number;
  readonly #onPressure: ((behind: Pressure | undefined) => void) | undefined;
  readonly #topics = new Map<string, Topic>();
  /** Whether a group is at `highWater`, so ingress publishes are held. */
  #pressed = false;
  /** Ingress publishes held, oldest first from `#heldHead`. */
  #held: (Held | undefined)[] = [];
  #heldHead = 0;
  #closing: Promise<void> | undefined;
  /** Set once close() stopped taking records (after the drain). */
  #closed = false;

  constructor(options: MemoryStanzaBusOptions = {}) {
    this.#partitions = positiveInteger(options.partitions ?? 16, 'partitions');
    this.#maxBuffered = positiveInteger(options.maxBuffered ?? 10_000, 'maxBuffered');
    this.#drainTimeout = positiveInteger(options.drainTimeoutMs ?? 10_000, 'drainTimeoutMs');
    this.#highWater = positiveInteger(options.highWater ?? 20_000, 'highWater');
    this.#lowWater = Math.floor(this.#highWater / 2);
    this.#highWaterChars = positiveInteger(options.highWaterChars ?? 32 * 2 ** 20, 'highWaterChars');
    this.#lowWaterChars = Math.floor(this.#highWaterChars / 2);
    this.#onPressure = options.onPressure;
    this.#onError =
      options.onError ??
      ((err, record) => {
        console.error(`stanza bus: handler failed on topic ${record.topic}`, err);
      });
  }

  publish(
    topic: string,
    key: string,
    value: string,
    headers?: Readonly<Record<string, string>>,
  ): Promise<void> {
    return this.#publish(topic, key, value, headers, false);
  }

  /**
   * The same bus, whose publishes wait while a group is too far behind (see the class comment): for
   * publishers outside the bus's handlers, which is to say the edge.
   */
  ingress(): StanzaBus {
    return {
      publish: (topic, key, value, headers) => this.#publish(topic, key, value, headers, true),
      subscribe: (topic, group, handler) => this.subscribe(topic, group, handler),
      close: () => this.close(),
    };
  }

  #publish(
    topic: string,
    key: string,
    value: string,
    headers: Readonly<Record<string, string>> | undefined,
    ingress: boolean,
  ): Promise<void> {
    // While close() drains, handlers still publish (a router's archive copies, say).
    if (this.#closed) return Promise.reject(new Error('stanza bus closed'));
    return tracePublish(SYSTEM, topic, undefined, headers, (carried) => {
      const record = { topic, key, value, headers: Object.keys(carried).length > 0 ? carried : NO_HEADERS };
      // Behind ingress records already held, an ingress record waits too: ingress keeps its order.
      if (!ingress || (!this.#pressed && this.#heldHead === this.#held.length)) return this.#append(record);
      return new Promise<void>((resolve, reject) => {
        this.#held.push({ record, resolve, reject });
      });
    });
  }

  /** Hands the held ingress records to the groups, in order, until one is at `highWater` again. */
  #releaseHeld(): void {
    while (!this.#pressed && this.#heldHead < this.#held.length) {
      const held = this.#held[this.#heldHead] as Held;
      this.#held[this.#heldHead] = undefined;
      this.#heldHead++;
      held.resolve(this.#append(held.record));
    }
    if (this.#heldHead === this.#held.length) {
      this.#held = [];
      this.#heldHead = 0;
    } else if (this.#heldHead >= COMPACT_AFTER && this.#heldHead * 2 >= this.#held.length) {
      this.#held = this.#held.slice(this.#heldHead);
      this.#heldHead = 0;
    }
  }

  #atHighWater(group: Group): boolean {
    return group.waiting >= this.#highWater || group.waitingChars >= this.#highWaterChars;
  }

  #atLowWater(group: Group): boolean {
    return group.waiting <= this.#lowWater && group.waitingChars <= this.#lowWaterChars;
  }

  #press(group: Group): void {
    this.#pressed = true;
    const { topic, name, waiting, waitingChars } = group;
    this.#onPressure?.({ topic, group: name, queued: waiting, queuedChars: waitingChars });
  }

  /** Ingress goes on once every group with members is down to half of both high waters. */
  #maybeRelease(): void {
    for (const state of this.#topics.values()) {
      for (const group of state.groups.values()) {
        if (group.members.length > 0 && !this.#atLowWater(group)) return;
      }
    }
    this.#pressed = false;
    this.#onPressure?.(undefined);
    // Not inside the handler's bookkeeping that got here; the held records go on in order.
    queueMicrotask(() => this.#releaseHeld());
  }

  #append(record: BusRecord): Promise<void> {
    const { topic, key } = record;
    const state = this.#topic(topic);
    if (state.groups.size === 0) {
      if (state.early.length >= this.#maxBuffered) return Promise.reject(this.#overflow(topic));
      state.early.push(record);
      return DONE;
    }
    // All groups take the record or none does.
    for (const group of state.groups.values()) {
      if (group.members.length === 0 && group.waiting >= this.#maxBuffered) {
        return Promise.reject(this.#overflow(topic));
      }
    }
    const partition = partitionOf(key, this.#partitions);
    for (const group of state.groups.values()) this.#enqueue(group, partition, record);
    return DONE;
  }

  subscribe(topic: string, group: string, handler: BusHandler): Promise<BusSubscription> {
    if (this.#closing) return Promise.reject(new Error('stanza bus closed'));
    const state = this.#topic(topic);
    let joined = state.groups.get(group);
    if (!joined) {
      joined = { topic, name: group, members: [], queues: [], waiting: 0, waitingChars: 0 };
      state.groups.set(group, joined);
      if (state.groups.size === 1) {
        for (const record of state.early) {
          this.#enqueue(joined, partitionOf(record.key, this.#partitions), record);
        }
        state.early = [];
      }
    }
    const member: Member = { handler, inFlight: 0, idle: undefined, left: undefined };
    joined.members.push(member);
    if (!this.#pressed && this.#atHighWater(joined)) this.#press(joined);
    for (const queue of joined.queues) {
      if (queue && queue.head < queue.records.length) this.#schedule(joined, queue);
    }
    const target = joined;
    return Promise.resolve({ close: () => this.#leave(target, member) });
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    const deadline = Date.now() + this.#drainTimeout;
    while (this.#busy() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_CHECK_MS));
    }
    this.#closed = true;
    const refused = new Error('stanza bus closed');
    for (let i = this.#heldHead; i < this.#held.length; i++) this.#held[i]?.reject(refused);
    this.#held = [];
    this.#heldHead = 0;
    const leaving: Promise<void>[] = [];
    for (const state of this.#topics.values()) {
      for (const group of state.groups.values()) {
        for (const member of [...group.members]) leaving.push(this.#leave(group, member));
      }
    }
    await Promise.all(leaving);
    this.#topics.clear();
  }

  /** Whether a group with members has records queued or handlers running. */
  #busy(): boolean {
    if (this.#heldHead < this.#held.length) return true;
    for (const state of this.#topics.values()) {
      for (const group of state.groups.values()) {
        if (group.members.length === 0) continue;
        if (group.waiting > 0 || group.members.some((member) => member.inFlight > 0)) return true;
      }
    }
    return false;
  }

  #topic(name: string): Topic {
    let state = this.#topics.get(name);
    if (!state) {
      state = { groups: new Map(), early: [] };
      this.#topics.set(name, state);
    }
    return state;
  }

  #overflow(topic: string): Error {
    return new Error(`stanza bus: ${this.#maxBuffered} records on topic ${topic} wait with no consumer`);
  }

  #enqueue(group: Group, partition: number, record: BusRecord): void {
    const queue: PartitionQueue = (group.queues[partition] ??= {
      index: partition,
      records: [],
      head: 0,
      claimed: new Set(),
      parked: new Map(),
      running: 0,
      sinceTurn: 0,
      scheduled: false,
    });
    group.waiting++;
    group.waitingChars += record.value.length;
    if (!this.#pressed && group.members.length > 0 && this.#atHighWater(group)) this.#press(group);
    if (queue.claimed.has(record.key)) {
      const later = queue.parked.get(record.key);
      if (later) later.push(record);
      else queue.parked.set(record.key, [record]);
      return;
    }
    queue.claimed.add(record.key);
    queue.records.push(record);
    if (group.members.length > 0) this.#schedule(group, queue);
  }

  /** Starts what may start in a microtask: never inside the call stack of publish or subscribe. */
  #schedule(group: Group, queue: PartitionQueue): void {
    if (queue.scheduled) return;
    queue.scheduled = true;
    queueMicrotask(() => {
      queue.scheduled = false;
      this.#pump(group, queue);
    });
  }

  /** Starts what may start now: the next records in order, while slots are free. */
  #pump(group: Group, queue: PartitionQueue): void {
    while (
      !queue.scheduled &&
      queue.head < queue.records.length &&
      queue.running < MAX_CONCURRENT_PER_PARTITION
    ) {
      // Partitions are spread over the members present now; when none is left the records wait.
      const member = group.members[queue.index % group.members.length];
      if (!member) break;
      const record = queue.records[queue.head] as BusRecord;
      if (queue.sinceTurn >= RECORDS_PER_TURN) {
        queue.scheduled = true;
        setImmediate(() => {
          queue.scheduled = false;
          queue.sinceTurn = 0;
          this.#pump(group, queue);
        });
        break;
      }
      queue.sinceTurn++;
      queue.records[queue.head] = undefined;
      queue.head++;
      group.waiting--;
      group.waitingChars -= record.value.length;
      // While ingress is held, each group at its low water looks whether the others are too.
      if (this.#pressed && this.#atLowWater(group)) this.#maybeRelease();
      // Under steady load the queue may never empty, so the consumed prefix is dropped as it goes.
      if (queue.head >= COMPACT_AFTER && queue.head * 2 >= queue.records.length) compact(queue);
      queue.running++;
      member.inFlight++;
      void this.#handle(group, queue, member, record);
    }
    if (queue.head === queue.records.length) compact(queue);
  }

  async #handle(group: Group, queue: PartitionQueue, member: Member, record: BusRecord): Promise<void> {
    try {
      const consumed = {
        topic: record.topic,
        headers: record.headers,
        group: group.name,
        partition: queue.index,
      };
      await traceConsume(SYSTEM, consumed, () => member.handler(record));
    } catch (err) {
      this.#report(err, record);
    }
    member.inFlight--;
    if (member.inFlight === 0) member.idle?.();
    queue.running--;
    // The key's next record, if one waits, is next in line; otherwise the key is free.
    const later = queue.parked.get(record.key);
    const next = later?.shift();
    if (next === undefined) queue.claimed.delete(record.key);
    else {
      if (later?.length === 0) queue.parked.delete(record.key);
      queue.records.push(next);
    }
    this.#pump(group, queue);
  }

  #report(err: unknown, record: BusRecord): void {
    try {
      this.#onError(err, record);
    } catch {
      // A failing error callback must not stop the partition.
    }
  }

  #leave(group: Group, member: Member): Promise<void> {
    if (member.left) return member.left;
    const index = group.members.indexOf(member);
    if (index !== -1) group.members.splice(index, 1);
    // A group left with no members no longer holds ingress back (its records are bounded by maxBuffered).
    if (this.#pressed && group.members.length === 0) this.#maybeRelease();
    member.left =
      member.inFlight === 0
        ? DONE
        : new Promise<void>((resolve) => {
            member.idle = resolve;
          });
    return member.left;
  }
}
