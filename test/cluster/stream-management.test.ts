// Edges failing and a registry losing its data, against the real backends: a stream resumed on the other
// edge after its edge was killed (kill -9) or drained (SIGTERM), with every message the sender saw
// acknowledged delivered exactly once, in order (XEP-0198); and a Redis restarted empty, after which the
// edges put their sessions back and routing recovers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startBackends,
  startLocalCluster,
  testRoleEnv,
  type LocalBackends,
  type LocalCluster,
  type RoleProcess,
} from '../../deploy/local/cluster.ts';
import { startRedis, type RunningRedis } from '../../deploy/local/redis.ts';
import { connect, RawClient, rawAuthenticate, rawLogin, type TestServer } from '../harness/index.ts';
import type { ClientEndpoint } from '../harness/index.ts';
import { showRoleLogs } from '../harness/role-logs.ts';
import type { Element } from '@starling/xmpp';

const SM = 'urn:xmpp:sm:3';
const PASSWORD = 'secret-password';

let backends: LocalBackends | undefined;
/** A Redis of its own for the drill that restarts it. */
let redis: RunningRedis | undefined;

beforeAll(async () => {
  [backends, redis] = await Promise.all([startBackends(), startRedis()]);
}, 240_000);

afterAll(async () => {
  await Promise.all([backends?.stop(), redis?.stop()]);
}, 60_000);

async function cluster(redisUrl?: string): Promise<{ cluster: LocalCluster; server: TestServer }> {
  if (!backends) throw new Error('the backends did not start');
  const started = await startLocalCluster({
    backends: redisUrl === undefined ? backends : { ...backends, redisUrl },
    env: testRoleEnv(),
  });
  let turn = 0;
  const server: TestServer = {
    shape: 'cluster',
    config: started.config,
    domain: started.config.domain,
    host: edgeAt(started, 0).host,
    ports: edgeAt(started, 0).ports,
    cert: started.cert,
    edges: started.edges,
    nextEdge: () => edgeAt(started, turn++ % started.edges.length),
    addUser: (username, password) => started.addUser(username, password),
    stop: async () => {
      await started.stop();
    },
  };
  return { cluster: started, server };
}

function edgeAt(cluster: LocalCluster, index: number): ClientEndpoint {
  const endpoint = cluster.edges[index];
  if (!endpoint) throw new Error(`no edge ${index}`);
  return endpoint;
}

function edgeProcess(cluster: LocalCluster, index: number): RoleProcess {
  const proc = cluster.processes.filter((p) => p.role === 'edge')[index];
  if (!proc) throw new Error(`no edge process ${index}`);
  return proc;
}

/** A raw client with stream management: it counts what it receives and numbers what it sends. */
class ManagedClient {
  client: RawClient;
  readonly jid: string;
  id = '';
  /** Message bodies in the order they arrived, on this connection and the ones it resumed on. */
  readonly bodies: string[] = [];
  /** Those of them that came from offline storage (with a delay stamp, XEP-0203). */
  readonly delayed: string[] = [];
  /** Stanzas received on the current stream (the client's h). */
  handled = 0;
  private sent = 0;

  private constructor(client: RawClient, jid: string) {
    this.client = client;
    this.jid = jid;
  }

  static async login(server: TestServer, edge: ClientEndpoint, username: string): Promise<ManagedClient> {
    const client = await RawClient.connect(server, 'c2s', edge);
    const jid = await rawLogin(client, server, username, PASSWORD);
    const managed = new ManagedClient(client, jid);
    client.write(`<enable xmlns='${SM}' resume='true'/>`);
    managed.id = /\sid="([^"]+)"/.exec(await client.read(/<enabled[^>]*\/>/))?.[1] ?? '';
    return managed;
  }

  /** Resumes this client's stream on `edge`, on a new connection; the old one is gone. */
  async resume(server: TestServer, edge: ClientEndpoint, username: string): Promise<RawClient> {
    const client = await RawClient.connect(server, 'c2s', edge);
    await rawAuthenticate(client, server, username, PASSWORD);
    client.write(`<resume xmlns='${SM}' previd='${this.id}' h='${this.handled}'/>`);
    const resumed = await client.read(/<resumed[^>]*\/>/, 30_000);
    expect(resumed).toContain(`previd="${this.id}"`);
    this.client = client;
    return client;
  }

  send(to: string, body: string): void {
    this.sent += 1;
    this.client.write(`<message to='${to}' type='chat' id='${body}'><body>${body}</body></message>`);
  }

  /** Asks for an acknowledgement; resolves with the server's h once it counts everything sent so far. */
  async acknowledged(): Promise<number> {
    for (;;) {
      this.client.write(`<r xmlns='${SM}'/>`);
      const answer = await this.client.read(/<a xmlns="urn:xmpp:sm:3" h="\d+"\/>/, 30_000);
      const h = Number(/h="(\d+)"/.exec(answer)?.[1]);
      if (h >= this.sent) return h;
    }
  }

  /** Reads until `count` message bodies arrived in total; every stanza counts in h. */
  async receiveUntil(count: number, timeout = 30_000): Promise<void> {
    while (this.bodies.length < count) {
      const text = await this.client.read(/<message[\s\S]*?<\/message>/, timeout);
      const stanza = /<message[\s\S]*?<\/message>$/.exec(text)?.[0] ?? '';
      this.handled += 1;
      const body = /<body>([^<]*)<\/body>/.exec(stanza)?.[1] ?? '';
      this.bodies.push(body);
      if (stanza.includes('urn:xmpp:delay')) this.delayed.push(body);
    }
  }
}

function range(from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);
}

/** What the history check found for one drill: every acknowledged message delivered once, in order. */
function checkHistory(
  drill: string,
  acknowledged: readonly string[],
  delivered: readonly string[],
  offline: readonly string[] = [],
): void {
  const seen = new Set<string>();
  let duplicates = 0;
  for (const body of [...delivered, ...offline]) {
    if (seen.has(body)) duplicates += 1;
    seen.add(body);
  }
  const lost = acknowledged.filter((body) => !seen.has(body));
  if (lost.length > 0 || duplicates > 0) console.log(`delivered in order of arrival: ${delivered.join(' ')}`);
  console.log(
    `history (${drill}): ${acknowledged.length} acknowledged, ${delivered.length} delivered, ` +
      `${offline.length} offline, 0 archived-only, 0 errors, ${lost.length} lost, ${duplicates} duplicates`,
  );
  expect(lost).toEqual([]);
  expect(duplicates).toBe(0);
  // Per sender, in order: live deliveries, then (for a gap) what waited offline.
  expect([...delivered, ...offline].filter((body) => acknowledged.includes(body)).sort(byNumber)).toEqual(
    [...acknowledged].sort(byNumber),
  );
  expect(delivered).toEqual([...delivered].sort(byNumber));
}

function byNumber(a: string, b: string): number {
  return Number(a.slice(1)) - Number(b.slice(1));
}

describe('stream resumption across edges', () => {
  it('resumes on the other edge after kill -9 of the edge that held the stream', async () => {
    const { cluster: running, server } = await cluster();
    showRoleLogs(running);
    try {
      await server.addUser('alice', PASSWORD);
      await server.addUser('bob', PASSWORD);
      const alice = await ManagedClient.login(server, edgeAt(running, 0), 'alice');
      const bob = await ManagedClient.login(server, edgeAt(running, 1), 'bob');

      for (const body of range(1, 20)) bob.send(alice.jid, body);
      expect(await bob.acknowledged()).toBe(20);
      await alice.receiveUntil(10);
      const victim = edgeProcess(running, 0);
      victim.child.kill('SIGKILL');
      await victim.exited;
      // While alice's edge is dead, bob goes on; the router keeps what it cannot deliver in her queue.
      for (const body of range(21, 40)) bob.send(alice.jid, body);
      expect(await bob.acknowledged()).toBe(40);

      await alice.resume(server, edgeAt(running, 1), 'alice');
      for (const body of range(41, 50)) bob.send(alice.jid, body);
      expect(await bob.acknowledged()).toBe(50);
      await alice.receiveUntil(50);
      checkHistory('kill -9 of the edge', range(1, 50), alice.bodies);
    } finally {
      await running.stop();
    }
  }, 240_000);

  it('drains an edge on SIGTERM with system-shutdown, keeping the stream to resume on the other edge', async () => {
    const { cluster: running, server } = await cluster();
    showRoleLogs(running);
    try {
      await server.addUser('carol', PASSWORD);
      await server.addUser('dave', PASSWORD);
      const carol = await ManagedClient.login(server, edgeAt(running, 0), 'carol');
      const dave = await ManagedClient.login(server, edgeAt(running, 1), 'dave');

      for (const body of range(1, 10)) dave.send(carol.jid, body);
      expect(await dave.acknowledged()).toBe(10);
      await carol.receiveUntil(10);
      const draining = edgeProcess(running, 0);
      draining.child.kill('SIGTERM');
      await carol.client.expectStreamError('system-shutdown', 30_000);
      expect(await draining.exited).toBe(0);
      for (const body of range(11, 20)) dave.send(carol.jid, body);
      expect(await dave.acknowledged()).toBe(20);

      await carol.resume(server, edgeAt(running, 1), 'carol');
      await carol.receiveUntil(20);
      checkHistory('SIGTERM of the edge', range(1, 20), carol.bodies);
    } finally {
      await running.stop();
    }
  }, 240_000);

  it('puts the sessions back when Redis restarts empty, and routing recovers without restarts', async () => {
    if (!redis) throw new Error('redis did not start');
    const { cluster: running, server } = await cluster(`redis://${redis.host}:${redis.port}`);
    showRoleLogs(running);
    try {
      await server.addUser('erin', PASSWORD);
      await server.addUser('frank', PASSWORD);
      const erin = await ManagedClient.login(server, edgeAt(running, 0), 'erin');
      const frank = await ManagedClient.login(server, edgeAt(running, 1), 'frank');
      erin.client.write('<presence/>');
      for (const body of range(1, 5)) frank.send(erin.jid, body);
      expect(await frank.acknowledged()).toBe(5);
      await erin.receiveUntil(5);

      await redis.restartEmpty();
      // Until the edges put their sessions back (at their next lease renewal), messages for erin find no
      // session and wait in offline storage; then they reach her again. Bounded: 60 messages, 30 s.
      let sent = 5;
      while (sent < 60) {
        sent += 1;
        frank.send(erin.jid, `m${sent}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
        if (erin.client.transcript.includes(`<body>m${sent}</body>`)) break;
      }
      const recoveredAt = sent;
      for (const body of range(sent + 1, sent + 5)) frank.send(erin.jid, body);
      sent += 5;
      expect(await frank.acknowledged()).toBe(sent);
      const live = (text: string): number => (text.match(/<message[\s>]/g) ?? []).length;
      await expect
        .poll(() => live(erin.client.transcript) >= 5 + (sent - recoveredAt) + 1, { timeout: 30_000 })
        .toBe(true);
      await erin.receiveUntil(live(erin.client.transcript));

      // What arrived in the gap waits offline. If one of those was stored as erin's session came back,
      // the router's word has presence hand them all to it (XEP-0160); what is still stored goes to a new
      // session at its initial presence. Either way each arrives once, with its delay stamp.
      const later = await connect(edgeAt(running, 1), {
        username: 'erin',
        password: PASSWORD,
        resource: 'later',
      });
      await later.send('<presence/>');
      const bodyOf = (el: Element): string | null => (el.name === 'message' ? el.getChildText('body') : null);
      const gap = range(6, sent).filter((b) => !erin.bodies.includes(b));
      const arrived = (body: string): boolean =>
        erin.client.transcript.includes(`<body>${body}</body>`) ||
        later.pending().some((el) => bodyOf(el) === body);
      await expect.poll(() => gap.every(arrived), { timeout: 15_000 }).toBe(true);
      await erin.receiveUntil(live(erin.client.transcript));
      const offline = later.pending().flatMap((el) => bodyOf(el) ?? []);
      await later.stop();
      console.log(`redis restart: routing recovered after ${recoveredAt - 5} messages sent into the gap`);
      const liveBodies = erin.bodies.filter((body) => !erin.delayed.includes(body));
      checkHistory('Redis restarted empty', range(1, sent), liveBodies, [...erin.delayed, ...offline]);
    } finally {
      await running.stop();
    }
  }, 240_000);
});
