// Redis SessionRegistry: the port contract on real Redis and Redis Cluster; slots, round trips, races, restarts.
import { Socket } from 'node:net';
import type { SessionRecord } from '@starling/ports';
import { deferred, describeSessionRegistryContract, unique, waitFor } from '@starling/ports/contracts';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  startRedis,
  startRedisCluster,
  type RunningRedis,
  type RunningRedisCluster,
} from '../../../deploy/local/redis.ts';
import { RedisSessionRegistry } from './redis-session-registry.ts';

let redis: RunningRedis;
let cluster: RunningRedisCluster;
/** What beforeAll started, stopped by afterAll even when the other half failed to start. */
const started: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  const [single, many] = await Promise.allSettled([startRedis(), startRedisCluster(3)]);
  if (single.status === 'fulfilled') started.push((redis = single.value));
  if (many.status === 'fulfilled') started.push((cluster = many.value));
  if (single.status === 'rejected') throw single.reason;
  if (many.status === 'rejected') throw many.reason;
}, 60_000);

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

const connectSingle = (): Promise<RedisSessionRegistry> =>
  RedisSessionRegistry.connect({ host: redis.host, port: redis.port });
const connectCluster = (): Promise<RedisSessionRegistry> =>
  RedisSessionRegistry.connect({ cluster: cluster.nodes });

describeSessionRegistryContract('RedisSessionRegistry on one Redis', connectSingle);
describeSessionRegistryContract('RedisSessionRegistry on a 3-node Redis Cluster', connectCluster);

function session(jid: string, edgeId: string): SessionRecord {
  return {
    jid,
    sessionId: unique('s'),
    edgeId,
    boundAt: Date.now(),
    priority: 0,
    available: false,
    interested: false,
  };
}

describe.each([
  {
    backend: 'one Redis',
    connect: connectSingle,
    raw: (): Redis | Cluster => new Redis(redis.port, redis.host),
  },
  {
    backend: 'Redis Cluster',
    connect: connectCluster,
    raw: (): Redis | Cluster => new Cluster([...cluster.nodes]),
  },
])('RedisSessionRegistry on $backend', ({ connect, raw }) => {
  let registries: RedisSessionRegistry[] = [];

  beforeAll(async () => {
    // Separate clients stand for separate edges racing each other.
    registries = await Promise.all([connect(), connect(), connect()]);
  });

  afterAll(async () => {
    await Promise.all(registries.map((r) => r.close()));
  });

  it('concurrent binds of one full JID end with one winner, each bind returning the record it replaced', async () => {
    for (let round = 0; round < 25; round++) {
      const jid = `${unique('romeo')}@example.net/orchard`;
      const [edge1, edge2] = [unique('edge-1'), unique('edge-2')];
      const previous = session(jid, edge2);
      await registries[0]!.bind(previous);
      // Two edges bind on edge-1, one on edge-2: a removal of a replaced member must never hit a live one.
      const contenders = [session(jid, edge1), session(jid, edge2), session(jid, edge1)];
      const replaced = await Promise.all(contenders.map((record, i) => registries[i]!.bind(record)));

      // The binds took effect in some order; each returned its predecessor, so they form one chain.
      const successor = new Map<string | undefined, SessionRecord>();
      replaced.forEach((old, i) => successor.set(old?.sessionId, contenders[i]!));
      expect(successor.size).toBe(3);
      const chain = [previous];
      for (let next = successor.get(previous.sessionId); next; next = successor.get(next.sessionId)) {
        chain.push(next);
      }
      expect(chain).toHaveLength(4);
      for (const [i, old] of replaced.entries()) {
        expect(old).toEqual(chain[chain.indexOf(contenders[i]!) - 1]);
      }
      const winner = chain[3]!;
      expect(await registries[0]!.get(jid)).toEqual(winner);
      expect(await registries[1]!.resources(jid.slice(0, jid.indexOf('/')))).toEqual([winner]);

      const loserEdge = winner.edgeId === edge1 ? edge2 : edge1;
      expect(await registries[2]!.sessionsOfEdge(winner.edgeId)).toEqual([winner]);
      expect(await registries[2]!.sessionsOfEdge(loserEdge)).toEqual([]);
    }
  });

  it('ignores an edge-index entry left by a client that died between its two writes', async () => {
    const registry = registries[0]!;
    const [edge1, edge2] = [unique('edge-1'), unique('edge-2')];
    const record = session(`${unique('mercutio')}@example.com/square`, edge1);
    await registry.bind(record);
    const client = raw();
    try {
      // A bind that got no further than the index: its token never reached a record.
      await client.sadd(registry.edgeKey(edge2), `0123456789abcdef ${record.jid}`);
      // An earlier bind on the same edge whose removal was lost: the record names the edge, not the token.
      await client.sadd(registry.edgeKey(edge1), `fedcba9876543210 ${record.jid}`);
      expect(await registry.sessionsOfEdge(edge2)).toEqual([]);
      expect(await registry.sessionsOfEdge(edge1)).toEqual([record]);
    } finally {
      client.disconnect();
    }
  });
});

describe('RedisSessionRegistry key layout on Redis Cluster', () => {
  let client: Cluster;

  beforeAll(async () => {
    client = new Cluster([...cluster.nodes], { lazyConnect: true });
    await client.connect();
  });

  afterAll(async () => {
    await client.quit();
  });

  const keyslot = async (key: string): Promise<number> => await client.cluster('KEYSLOT', key);

  async function keysOf(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for (const node of client.nodes('master')) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
    }
    return keys;
  }

  it('keeps every key of one bare JID in one slot, decided by the bare JID alone', async () => {
    const prefixes = [`${unique('a')}:`, `${unique('b')}:`];
    const registries = prefixes.map((prefix) => new RedisSessionRegistry(client, { prefix }));
    // RFC 7622 allows braces in a localpart; unescaped, "}x" would make an empty hash tag.
    const bares = ['}x', '{y}', 'a}b', 'a', 'plain'].map((local) => `${local}${unique('')}@example.com`);
    for (const registry of registries) {
      for (const bare of bares) {
        for (const resource of ['balcony', 'tomb/with{brace}']) {
          await registry.bind(session(`${bare}/${resource}`, unique('edge')));
        }
      }
    }

    for (const [i, registry] of registries.entries()) {
      const keys = await keysOf(prefixes[i]!);
      for (const bare of bares) {
        const key = registry.sessionsKey(bare);
        expect(keys).toContain(key);
        expect(await registry.resources(bare)).toHaveLength(2);
        // The slot does not depend on the prefix, so keys added later under any name share it.
        expect(await keyslot(key)).toBe(await keyslot(registries[1 - i]!.sessionsKey(bare)));
      }
      // Bare JIDs are spread over slots, not piled on one.
      const slots = new Set(await Promise.all(bares.map((bare) => keyslot(registry.sessionsKey(bare)))));
      expect(slots.size).toBeGreaterThan(1);
      // Besides the edge indexes and the lease keys, a bare JID owns exactly one key.
      const sessionKeys = keys.filter((key) => key.startsWith(`${prefixes[i]!}sessions:`));
      expect(sessionKeys.sort()).toEqual(bares.map((bare) => registry.sessionsKey(bare)).sort());
    }
  });

  it('keeps both lease keys in one slot', async () => {
    const prefix = `${unique('l')}:`;
    const registry = new RedisSessionRegistry(client, { prefix });
    const edge = unique('edge');
    await registry.renewLease(edge, '127.0.0.1:7000', 60_000);
    const keys = await keysOf(prefix);
    expect(keys).toHaveLength(2);
    const slots = await Promise.all(keys.map(keyslot));
    expect(slots[0]).toBe(slots[1]);
    await registry.dropEdge(edge);
  });
});

describe('RedisSessionRegistry on one Redis', () => {
  it('sends the commands issued in one turn of the event loop in one write', async () => {
    const registry = await connectSingle();
    try {
      // Connected, and the first command's round trip done.
      await registry.resources(`${unique('romeo')}@example.com`);
      // Calls through to the real write, recording the socket of each.
      const writes = vi.spyOn(Socket.prototype, 'write');
      try {
        const bares = [...Array(50).keys()].map((i) => `${unique(`user${i}`)}@example.com`);
        const found = await Promise.all(bares.map((bare) => registry.resources(bare)));
        expect(found.every((resources) => resources.length === 0)).toBe(true);
        // A router looks up the recipients of a fetched batch at once: one write, not one per command.
        expect(
          writes.mock.contexts.filter((socket) => (socket as Socket).remotePort === redis.port),
        ).toHaveLength(1);
      } finally {
        writes.mockRestore();
      }
    } finally {
      await registry.close();
    }
  });

  it('reads every resource of a bare JID with one command', async () => {
    const client = new Redis(redis.port, redis.host, { lazyConnect: true });
    await client.connect();
    const registry = new RedisSessionRegistry(client);
    const monitor = await client.monitor();
    try {
      const bare = `${unique('juliet')}@example.com`;
      for (const resource of ['balcony', 'tomb', 'chapel']) {
        await registry.bind(session(`${bare}/${resource}`, unique('edge')));
      }
      const addr = /addr=(\S+)/.exec(await client.client('INFO'))?.[1];
      expect(addr).toBeDefined();

      // The monitor reports one connection's commands in the order they ran: echoes fence the call.
      const [start, end] = [unique('start'), unique('end')];
      const [started, ended] = [deferred(), deferred()];
      const between: string[][] = [];
      let inside = false;
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (source !== addr) return;
        if (args[1] === start) {
          inside = true;
          started.resolve();
        } else if (args[1] === end) {
          inside = false;
          ended.resolve();
        } else if (inside) {
          between.push(args);
        }
      });
      await client.echo(start);
      await started.promise;
      const resources = await registry.resources(bare);
      await client.echo(end);
      await ended.promise;
      expect(resources).toHaveLength(3);
      expect(between).toHaveLength(1);
    } finally {
      monitor.disconnect();
      client.disconnect();
    }
  });

  it('keeps working after Redis restarts empty', async () => {
    const client = new Redis(redis.port, redis.host, { lazyConnect: true });
    const errors: Error[] = [];
    client.on('error', (err: Error) => errors.push(err));
    await client.connect();
    const registry = new RedisSessionRegistry(client);
    try {
      const edge = unique('edge');
      const before = session(`${unique('nurse')}@example.com/chamber`, edge);
      await registry.bind(before);
      await registry.renewLease(edge, '127.0.0.1:7001', 60_000);
      const oldPid = redis.pids[0];

      await redis.restartEmpty();
      expect(redis.pids[0]).not.toBe(oldPid);

      // Commands in flight during the restart may fail; once reconnected they succeed on the empty server.
      await waitFor(
        async () => {
          try {
            return (await registry.get(before.jid)) === undefined;
          } catch {
            return false;
          }
        },
        10_000,
        'the registry to reach the restarted Redis',
      );
      expect(await registry.lease(edge)).toBeUndefined();
      expect(await registry.sessionsOfEdge(edge)).toEqual([]);

      // The scripts are gone from the new server's cache too; they are loaded again on first use.
      const after = session(before.jid, edge);
      expect(await registry.bind(after)).toBeUndefined();
      expect(await registry.resources(before.jid.slice(0, before.jid.indexOf('/')))).toEqual([after]);
      expect(await registry.sessionsOfEdge(edge)).toEqual([after]);
      await registry.renewLease(edge, '127.0.0.1:7001', 60_000);
      expect((await registry.lease(edge))?.address).toBe('127.0.0.1:7001');
      expect(await registry.unbind(after.jid, after.sessionId)).toEqual(after);
    } finally {
      client.disconnect();
    }
  });
});
