// KafkaSubscription's answers to what its group client reports in cases a single local broker produces
// only by chance: a rejoin refused, a coordinator that moved, a rejoin under way while records arrive, a
// committed offset the broker no longer has. kafka-stanza-bus.test.ts covers the subscription on a real
// broker; here a scripted client stands in for @platformatic/kafka's consumer, emitting its events.
import { EventEmitter } from 'node:events';
import type { BusRecord } from '@starling/ports';
import { deferred, waitFor } from '@starling/ports/contracts';
import { afterEach, describe, expect, it } from 'vitest';
import { KafkaSubscription, type GroupClient, type KafkaBusLog } from './kafka-stanza-bus.ts';

const TOPIC = 'xmpp.stanzas';
const OFFSET_OUT_OF_RANGE = 1;

interface FetchAsked {
  readonly partition: number;
  readonly fetchOffset: bigint;
}

/** An error as the client gathers a broker's answer: found by `findBy('apiId', …)`. */
function brokerError(id: string, response?: unknown): Error {
  return Object.assign(new Error(id), {
    response,
    findBy: (property: string, value: unknown) => (property === 'apiId' && value === id ? {} : null),
  });
}

/** A group client the test drives: joins when told, answers fetches from what the test put on the log. */
class ScriptedClient extends EventEmitter {
  readonly topics = { track: (): boolean => true };
  readonly commits: { partition: number; offset: bigint }[] = [];
  readonly fetches: FetchAsked[] = [];
  /** The partitions of each fetch request, in the order asked. */
  readonly requests: number[][] = [];
  /** Per partition, the records on the broker; the oldest one still there. */
  readonly log = new Map<number, string[]>();
  oldest = 0n;
  committed: bigint[] = [];
  closed = false;
  #joining: (() => void) | undefined;
  /** The error the next fetch is refused with. */
  refuseNextFetch: Error | undefined;
  /** Lookups of the oldest offsets still to refuse. */
  refuseListOffsets = 0;

  joinGroup(): Promise<string> {
    return new Promise((resolve) => {
      this.#joining = () => resolve('member');
    });
  }

  /** The group's answer to a join: this client holds `partitions` in a new generation. */
  joined(partitions: readonly number[]): void {
    this.emit('consumer:group:join', {
      groupId: 'g',
      memberId: 'member',
      assignments: [{ topic: TOPIC, partitions: [...partitions] }],
    });
    this.#joining?.();
    this.#joining = undefined;
  }

  metadata(): Promise<unknown> {
    const partitions = [...Array(4).keys()].map(() => ({ leader: 1, leaderEpoch: 0 }));
    return Promise.resolve({
      topics: new Map([[TOPIC, { id: 'topic-id', partitions, partitionsCount: 4 }]]),
    });
  }

  clearMetadata(): void {}

  listCommittedOffsets(): Promise<Map<string, bigint[]>> {
    return Promise.resolve(new Map([[TOPIC, this.committed]]));
  }

  listOffsets(): Promise<Map<string, bigint[]>> {
    if (this.refuseListOffsets > 0) {
      this.refuseListOffsets--;
      return Promise.reject(new Error('Connection closed'));
    }
    return Promise.resolve(new Map([[TOPIC, [this.oldest, this.oldest, this.oldest, this.oldest]]]));
  }

  async fetch(options: {
    topics: { partitions: { partition: number; fetchOffset: bigint }[] }[];
  }): Promise<unknown> {
    const asked = options.topics.flatMap((t) => t.partitions);
    this.fetches.push(...asked.map(({ partition, fetchOffset }) => ({ partition, fetchOffset })));
    this.requests.push(asked.map(({ partition }) => partition));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const refused = this.refuseNextFetch;
    this.refuseNextFetch = undefined;
    if (refused) throw refused;
    const partitions = asked.map(({ partition, fetchOffset }) => {
      const values = (this.log.get(partition) ?? []).slice(Number(fetchOffset));
      const records = values.map((value, i) => ({
        offsetDelta: i,
        // 'k/b' is the record 'k/b' of key 'k'; a value without a slash is its own key.
        key: Buffer.from(value.includes('/') ? (value.split('/')[0] as string) : `key-${value}`),
        value: Buffer.from(value),
        headers: [],
      }));
      return {
        partitionIndex: partition,
        errorCode: 0,
        records:
          records.length === 0
            ? undefined
            : [{ firstOffset: fetchOffset, lastOffsetDelta: records.length - 1, attributes: 0, records }],
      };
    });
    return { responses: [{ topicId: 'topic-id', partitions }] };
  }

  commit(options: { offsets: { partition: number; offset: bigint }[] }): Promise<void> {
    this.commits.push(...options.offsets.map(({ partition, offset }) => ({ partition, offset })));
    return Promise.resolve();
  }

  close(_force: boolean, callback: (error: Error | null) => void): void {
    this.closed = true;
    callback(null);
  }
}

const subscriptions: KafkaSubscription[] = [];

afterEach(async () => {
  await Promise.all(subscriptions.splice(0).map((s) => s.close()));
});

/**
 * A started subscription whose first client joined with partition 0 and handled the record 'a'. Its
 * handler notes each record as it starts; the records named in `held` then wait until released.
 */
async function joinedSubscription(held: ReadonlyMap<string, Promise<void>> = new Map()): Promise<{
  clients: ScriptedClient[];
  handled: string[];
  logged: string[];
}> {
  const clients: ScriptedClient[] = [];
  const handled: string[] = [];
  const logged: string[] = [];
  const log: KafkaBusLog = (_level, message) => logged.push(message);
  const subscription = new KafkaSubscription({
    client: () => {
      const client = new ScriptedClient();
      // Each new client sees the broker as the last one left it.
      const last = clients[clients.length - 1];
      if (last) {
        for (const [partition, values] of last.log) client.log.set(partition, values);
        client.committed = last.committed;
      }
      clients.push(client);
      return client as unknown as GroupClient;
    },
    topic: TOPIC,
    group: 'router',
    handler: (record: BusRecord) => {
      handled.push(record.value);
      return held.get(record.value) ?? Promise.resolve();
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
  await waitFor(() => clients.length === 1, 1_000, 'a client');
  const first = clients[0] as ScriptedClient;
  first.log.set(0, ['a']);
  first.joined([0]);
  await started;
  await waitFor(() => handled.includes('a'), 1_000, 'the first record');
  return { clients, handled, logged };
}

/** Lets timers, fetches and handlers of a few turns run. */
const turns = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe('KafkaSubscription', () => {
  it('joins with a new client when its rejoin after a rebalance failed, and goes on from the committed offset', async () => {
    const { clients, handled, logged } = await joinedSubscription();
    const first = clients[0] as ScriptedClient;
    await waitFor(() => first.commits.some((c) => c.offset === 1n), 2_000, 'the commit after a');
    first.committed = [1n];
    // The library emits 'error' when a rejoin failed for good: its heartbeats have stopped.
    first.emit('client:performWithRetry', 'rejoinGroup', 0, 0);
    first.log.set(0, ['a', 'b']);
    first.emit('error', new Error('rejoin failed'));
    await waitFor(() => clients.length === 2, 1_000, 'a second client');
    expect(first.closed).toBe(true);
    expect(logged).toContain('rejoining the group failed, joining with a new member');
    await turns();
    // Nothing was started between the failure and the new member's join.
    expect(handled).toEqual(['a']);

    const second = clients[1] as ScriptedClient;
    second.joined([0]);
    await waitFor(() => handled.includes('b'), 1_000, 'the record after the new join');
    expect(handled).toEqual(['a', 'b']);
    expect(second.fetches[0]).toEqual({ partition: 0, fetchOffset: 1n });
  });

  it('starts no record while a rejoin is under way, and fetches again from the committed offset after it', async () => {
    const { clients, handled, logged } = await joinedSubscription();
    const client = clients[0] as ScriptedClient;
    client.emit('client:performWithRetry', 'rejoinGroup', 0, 0);
    client.log.set(0, ['a', 'b']);
    await turns();
    expect(handled).toEqual(['a']);

    // The same member joins the next generation with partitions 0 and 1; nothing was committed yet.
    client.log.set(1, ['x']);
    client.committed = [];
    client.joined([0, 1]);
    await waitFor(() => handled.includes('b') && handled.includes('x'), 1_000, 'b and x');
    // 'a' was fetched again (no committed offset) but not started again: this member had started it.
    expect(handled.filter((value) => value === 'a')).toHaveLength(1);
    expect(clients).toHaveLength(1);
    // Each generation is logged: a pause in consuming shows as a rebalance in the role's log.
    expect(logged.filter((message) => message === 'joined the group')).toHaveLength(2);
  });

  it('joins with a new client when its coordinator moved, as the client keeps the one it found first', async () => {
    const { clients, logged } = await joinedSubscription();
    const first = clients[0] as ScriptedClient;
    first.emit('consumer:heartbeat:error', { error: brokerError('NOT_COORDINATOR') });
    await waitFor(() => clients.length === 2, 1_000, 'a second client');
    expect(first.closed).toBe(true);
    expect(logged).toContain('group coordinator moved, joining again');
  });

  it('keeps its client through a heartbeat that failed once, with the group heard from lately', async () => {
    const { clients, handled } = await joinedSubscription();
    const client = clients[0] as ScriptedClient;
    client.emit('consumer:heartbeat:error', { error: new Error('Connection closed') });
    client.log.set(0, ['a', 'b']);
    await waitFor(() => handled.includes('b'), 1_000, 'the next record');
    expect(clients).toHaveLength(1);
  });

  it('puts another partition first in each fetch, as a broker answers an oversized batch only for the first', async () => {
    const { clients } = await joinedSubscription();
    const client = clients[0] as ScriptedClient;
    client.committed = [1n, 0n, 0n];
    client.emit('client:performWithRetry', 'rejoinGroup', 0, 0);
    client.joined([0, 1, 2]);
    await waitFor(() => client.requests.filter((r) => r.length === 3).length >= 6, 2_000, 'six fetches');
    const firsts = new Set(client.requests.filter((r) => r.length === 3).map((r) => r[0]));
    expect(firsts).toEqual(new Set([0, 1, 2]));
  });

  it('starts from the oldest record when the broker no longer has the offset it fetches from, asking again for it when that fails', async () => {
    const { clients, handled, logged } = await joinedSubscription();
    const client = clients[0] as ScriptedClient;
    // Retention deleted the log up to offset 5, past this member's position (1).
    client.log.set(0, ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    client.oldest = 5n;
    client.refuseListOffsets = 1;
    client.refuseNextFetch = brokerError('OFFSET_OUT_OF_RANGE', {
      responses: [
        { topicId: 'topic-id', partitions: [{ partitionIndex: 0, errorCode: OFFSET_OUT_OF_RANGE }] },
      ],
    });
    await waitFor(() => handled.includes('g'), 2_000, 'the records after the oldest offset');
    expect(handled).toEqual(['a', 'f', 'g']);
    expect(logged).toContain('committed offsets no longer on the broker; starting from the oldest record');
    expect(logged).toContain('reading the oldest offsets failed, trying again');
  });

  it("parks a busy key's later records while other keys go past, and commits no further than the oldest not finished", async () => {
    const gate = deferred();
    const { clients, handled } = await joinedSubscription(new Map([['k/b', gate.promise]]));
    const client = clients[0] as ScriptedClient;
    // Offsets 1 to 4: k/c waits for k/b, which runs; x and y are of other keys.
    client.log.set(0, ['a', 'k/b', 'k/c', 'x', 'y']);
    await waitFor(() => handled.includes('y'), 1_000, 'the records behind the parked one');
    await waitFor(() => client.commits.some((c) => c.offset === 1n), 1_000, 'the commit after a');
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(handled).toEqual(['a', 'k/b', 'x', 'y']);
    // k/b runs and k/c waits: nothing past offset 1 is committed, though x and y are done.
    expect(client.commits.every((c) => c.offset <= 1n)).toBe(true);

    gate.resolve();
    await waitFor(() => client.commits.some((c) => c.offset === 5n), 1_000, 'the commit after y');
    expect(handled).toEqual(['a', 'k/b', 'x', 'y', 'k/c']);
  });

  it('after a join, fetches a parked record again and skips the records started above it', async () => {
    const first = deferred();
    const second = deferred();
    const held = new Map([
      ['k/b', first.promise],
      ['k/c', second.promise],
    ]);
    const { clients, handled } = await joinedSubscription(held);
    const client = clients[0] as ScriptedClient;
    client.log.set(0, ['a', 'k/b', 'k/c', 'x']);
    await waitFor(() => handled.includes('x'), 1_000, 'x, past the parked k/c');

    // A rebalance begins: k/b ends meanwhile, and k/c, parked behind it, does not start.
    client.emit('client:performWithRetry', 'rejoinGroup', 0, 0);
    first.resolve();
    await turns();
    expect(handled).toEqual(['a', 'k/b', 'x']);

    // The same member keeps partition 0; the group has offset 1 (a) committed.
    client.committed = [1n];
    const fetched = client.fetches.length;
    client.joined([0]);
    await waitFor(() => handled.includes('k/c'), 1_000, 'k/c in the new generation');
    // Fetched again from k/c, the oldest record not started; x, started before the join, is not run again.
    expect(client.fetches[fetched]).toEqual({ partition: 0, fetchOffset: 2n });
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(handled).toEqual(['a', 'k/b', 'x', 'k/c']);
    // k/c runs: x being done moves nothing past it.
    expect(Math.max(...client.commits.map((c) => Number(c.offset)))).toBe(2);

    second.resolve();
    await waitFor(() => client.commits.some((c) => c.offset === 4n), 1_000, 'the commit after x');
  });
});
