// The cluster shape end to end: real Kafka, Redis and PostgreSQL, two edges, two routers, presence and archive,
// each its own process, with users on different edges.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../harness/index.ts';
import { printRoleLogs } from '../harness/role-logs.ts';
import { startLocalCluster, testRoleEnv, type LocalCluster } from '../../deploy/local/cluster.ts';
import { openBackendCounters } from '../../bench/src/servers/backend-counters.ts';

let cluster: LocalCluster | undefined;

function running(): LocalCluster {
  if (!cluster) throw new Error('the cluster did not start');
  return cluster;
}

beforeAll(async () => {
  cluster = await startLocalCluster({
    env: testRoleEnv(),
  });
  for (const name of ['romeo', 'juliet', 'nurse']) await running().addUser(name, `${name}-secret`);
}, 240_000);

afterAll(async () => {
  if (process.env.STARLING_TEST_LOG && cluster) printRoleLogs(cluster);
  // Every role drains and exits cleanly on SIGTERM.
  if (cluster) expect(await cluster.stop()).toEqual([0, 0, 0, 0, 0, 0]);
}, 120_000);

function edge(index: number): NonNullable<LocalCluster['edges'][number]> {
  const endpoint = running().edges[index];
  if (!endpoint) throw new Error(`no edge ${index}`);
  return endpoint;
}

const body = (text: string) => (el: { name: string; getChildText(name: string): string | null }) =>
  el.name === 'message' && el.getChildText('body') === text;

describe('a cluster of separate processes', () => {
  it('routes a message from a user on one edge to a user on the other', async () => {
    const romeo = await connect(edge(0), {
      username: 'romeo',
      password: 'romeo-secret',
      resource: 'balcony',
    });
    const juliet = await connect(edge(1), {
      username: 'juliet',
      password: 'juliet-secret',
      resource: 'garden',
    });
    await juliet.send('<presence/>');
    await juliet.expect((el) => el.name === 'presence' && el.attrs.from === 'juliet@localhost/garden');
    await romeo.send("<message to='juliet@localhost' type='chat'><body>across the cluster</body></message>");
    const received = await juliet.expect(body('across the cluster'), 15_000);
    expect(received.attrs.from).toBe('romeo@localhost/balcony');
    expect(received.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.by).toBe('juliet@localhost');
    await romeo.stop();
    await juliet.stop();
  });

  it('costs the backends three Kafka records and two archive rows per archived chat message', async () => {
    const backends = running().ownBackends;
    if (!backends) throw new Error('the cluster started no backends of its own');
    const counters = await openBackendCounters(backends);
    // Counts once what earlier sessions set off (their ends, their archive writes) has landed.
    const settled = async (): Promise<Record<string, number>> => {
      let last = await counters.read();
      for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const next = await counters.read();
        if (next.kafka_records === last.kafka_records && next.pg_archive_rows === last.pg_archive_rows) {
          return next;
        }
        last = next;
      }
      throw new Error('the backends did not settle within 10 s');
    };
    const romeo = await connect(edge(0), { username: 'romeo', password: 'romeo-secret', resource: 'count' });
    const juliet = await connect(edge(1), {
      username: 'juliet',
      password: 'juliet-secret',
      resource: 'count',
    });
    try {
      const before = await settled();
      await romeo.send("<message to='juliet@localhost/count' type='chat'><body>counted</body></message>");
      await juliet.expect(body('counted'), 15_000);
      // The archive role writes after the delivery may have happened.
      const deadline = Date.now() + 10_000;
      while (
        (await counters.read()).pg_archive_rows! - before.pg_archive_rows! < 2 &&
        Date.now() < deadline
      ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const after = await settled();
      // The stanza on the stanzas topic, then one archive write for each party.
      expect(after.kafka_records! - before.kafka_records!).toBe(3);
      expect(after.pg_archive_rows! - before.pg_archive_rows!).toBe(2);
      expect(after.pg_wal_bytes!).toBeGreaterThan(before.pg_wal_bytes!);
      // At least the router's look-up of juliet's sessions.
      expect(after.redis_commands! - before.redis_commands!).toBeGreaterThanOrEqual(1);
    } finally {
      await romeo.stop();
      await juliet.stop();
      await counters.close();
    }
  });

  it('keeps one sender’s messages in order across edges, routers and partitions', async () => {
    const romeo = await connect(edge(0), { username: 'romeo', password: 'romeo-secret', resource: 'order' });
    const juliet = await connect(edge(1), {
      username: 'juliet',
      password: 'juliet-secret',
      resource: 'order',
    });
    for (let i = 0; i < 100; i++) {
      await romeo.send(`<message to='juliet@localhost/order' type='chat'><body>n${i}</body></message>`);
    }
    for (let i = 0; i < 100; i++) {
      const next = await juliet.expect(
        (el) => el.name === 'message' && el.getChildText('body')?.startsWith('n') === true,
        15_000,
      );
      expect(next.getChildText('body')).toBe(`n${i}`);
    }
    await romeo.stop();
    await juliet.stop();
  });

  it('stores a message for an offline user in PostgreSQL and delivers it at login on the other edge', async () => {
    const romeo = await connect(edge(0), {
      username: 'romeo',
      password: 'romeo-secret',
      resource: 'offline',
    });
    await romeo.send("<message to='nurse@localhost' type='chat'><body>while you were out</body></message>");
    // The router handles romeo's stanzas in order and the archive topic keeps them in order, so the
    // query sees the message already archived (read-your-writes), and so already stored offline.
    const fin = await romeo.iq(
      "<iq type='set'><query xmlns='urn:xmpp:mam:2' queryid='q1'><x xmlns='jabber:x:data' type='submit'>" +
        "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" +
        "<field var='with'><value>nurse@localhost</value></field></x></query></iq>",
      15_000,
    );
    expect(fin.attrs.type).toBe('result');
    const results = romeo
      .pending()
      .filter((el) => el.getChild('result', 'urn:xmpp:mam:2')?.attrs.queryid === 'q1');
    expect(results.some((el) => el.toString().includes('while you were out'))).toBe(true);
    const nurse = await connect(edge(1), { username: 'nurse', password: 'nurse-secret', resource: 'later' });
    await nurse.send('<presence/>');
    const stored = await nurse.expect(body('while you were out'), 15_000);
    expect(stored.getChild('delay', 'urn:xmpp:delay')).toBeDefined();
    await romeo.stop();
    await nurse.stop();
  });

  it('subscribes across edges and shares presence', async () => {
    const romeo = await connect(edge(0), { username: 'romeo', password: 'romeo-secret', resource: 'sub' });
    const juliet = await connect(edge(1), { username: 'juliet', password: 'juliet-secret', resource: 'sub' });
    await romeo.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>");
    await juliet.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>");
    // Both available, so each may receive the other's presence (RFC 6121 §3.1.5).
    await romeo.send('<presence/>');
    await romeo.expect((el) => el.name === 'presence' && el.attrs.from === romeo.jid);
    await juliet.send('<presence/>');
    await juliet.expect((el) => el.name === 'presence' && el.attrs.from === juliet.jid);
    await romeo.send("<presence to='juliet@localhost' type='subscribe'/>");
    await juliet.expect((el) => el.name === 'presence' && el.attrs.type === 'subscribe', 15_000);
    await juliet.send("<presence to='romeo@localhost' type='subscribed'/>");
    const push = await romeo.expect(
      (el) =>
        el.name === 'iq' &&
        el.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.subscription === 'to',
      15_000,
    );
    expect(push.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.jid).toBe('juliet@localhost');
    const presence = await romeo.expect(
      (el) =>
        el.name === 'presence' && el.attrs.from === 'juliet@localhost/sub' && el.attrs.type === undefined,
      15_000,
    );
    expect(presence).toBeDefined();
    await romeo.stop();
    await juliet.stop();
  });

  it('serves metrics, health and readiness from every role', async () => {
    for (const proc of running().processes) {
      const base = `http://127.0.0.1:${proc.opsPort}`;
      expect((await fetch(`${base}/healthz`)).status, proc.name).toBe(200);
      expect((await fetch(`${base}/readyz`)).status, proc.name).toBe(200);
      expect(await (await fetch(`${base}/metrics`)).text(), proc.name).toContain('xmpp_process_');
    }
  });
});
