// Fault drills against a local cluster on real Kafka, Redis and PostgreSQL: kill -9 of an edge (sessions
// without stream management), kill -9 of a router, and a Kafka broker restart, each under load and each
// followed by a history check (ARCHITECTURE.md, Guarantees 1, 2 and 4). One set of backends and one
// cluster serve the three drills, in an order where each one's damage leaves the next one's path intact:
// the edge drill kills edge-1 (the others use edge-2), the router drill leaves one router, and the Kafka
// restart comes last.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AssignerProtocol, Kafka, logLevel, Partitioners, type PartitionMetadata } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GROUP_ARCHIVE,
  GROUP_PRESENCE,
  GROUP_ROUTER,
  TOPIC_ARCHIVE,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
} from '@starling/core';
import type { Element } from '@starling/xmpp';
import {
  settleGroups,
  startLocalCluster,
  testRoleEnv,
  type LocalCluster,
  type RoleProcess,
} from '../../deploy/local/cluster.ts';
import { startKafka, type RunningKafka } from '../../deploy/local/kafka.ts';
import { startPostgres, type RunningPostgres } from '../../deploy/local/postgres.ts';
import { startRedis, type RunningRedis } from '../../deploy/local/redis.ts';
import type { ClientEndpoint } from '../harness/index.ts';
import { printRoleLogs, showRoleLogs } from '../harness/role-logs.ts';
import { DrillClient } from './drill-client.ts';
import { formatReport, History, storedMessages, type HistoryReport, type Observations } from './history.ts';

/** Short enough that the edge drill stays short; long enough that a busy 2-core machine renews in time. */
const LEASE_SECONDS = 5;
const SWEEP_SECONDS = 1;
/** Allowance on top of lease + sweep for the session end to travel through Kafka and presence. */
const PRESENCE_MARGIN_MS = 10_000;
const LOGIN_MS = 20_000;
/** Bounds of the waits after a fault: generous, since a loaded machine is slow, not wrong. */
const SETTLE_MS = 120_000;

let kafka: RunningKafka | undefined;
let redis: RunningRedis | undefined;
let postgres: RunningPostgres | undefined;
let cluster: LocalCluster | undefined;
let configDir: string | undefined;

function running(): LocalCluster {
  if (!cluster) throw new Error('the cluster did not start');
  return cluster;
}

function role(name: string): RoleProcess {
  const proc = running().processes.find((p) => p.name === name);
  if (!proc) throw new Error(`no role ${name}`);
  return proc;
}

function endpointOf(name: string): ClientEndpoint {
  const endpoint = role(name).endpoint;
  if (!endpoint) throw new Error(`${name} is not an edge`);
  return endpoint;
}

function brokers(): string[] {
  if (!kafka) throw new Error('Kafka did not start');
  return [...kafka.brokers];
}

async function stopBackends(): Promise<void> {
  await Promise.all([kafka?.stop(), redis?.stop(), postgres?.stop()]);
}

beforeAll(async () => {
  configDir = await mkdtemp(join(tmpdir(), 'starling-drills-'));
  const configFile = join(configDir, 'starling.yaml');
  await writeFile(
    configFile,
    `cluster:\n  leaseSeconds: ${LEASE_SECONDS}\n  sweepSeconds: ${SWEEP_SECONDS}\n`,
    'utf8',
  );
  // Started here rather than by the cluster: the Kafka drill needs the broker's restart handle.
  const started = await Promise.allSettled([startPostgres(), startRedis(), startKafka({ partitions: 8 })]);
  const [pg, rd, kf] = started;
  if (pg.status === 'fulfilled') postgres = pg.value;
  if (rd.status === 'fulfilled') redis = rd.value;
  if (kf.status === 'fulfilled') kafka = kf.value;
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined || !postgres || !redis || !kafka) {
    await stopBackends();
    throw failed?.reason ?? new Error('a backend did not start');
  }
  cluster = await startLocalCluster({
    backends: {
      kafkaBrokers: kafka.brokers,
      redisUrl: `redis://${redis.host}:${redis.port}`,
      postgresUrl: postgres.url,
    },
    configFile,
    env: testRoleEnv(),
  });
}, 240_000);

afterAll(async () => {
  if (process.env.STARLING_TEST_LOG && cluster) printRoleLogs(cluster, 400);
  if (cluster) {
    const codes = await cluster.stop();
    console.log(
      `roles stopped: ${running()
        .processes.map((p, i) => `${p.name}=${codes[i] ?? '?'}`)
        .join(' ')}`,
    );
  }
  await stopBackends();
  if (configDir) await rm(configDir, { recursive: true, force: true });
}, 180_000);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `condition` holds, checking every 50 ms, failing after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function kill9(proc: RoleProcess): Promise<void> {
  process.kill(proc.pid, 'SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    proc.exited.then(() => 'exited'),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), 10_000))),
  ]);
  clearTimeout(timer);
  if (code !== 'exited') throw new Error(`${proc.name} still runs 10 s after SIGKILL`);
}

/** Creates the accounts (password = username). */
async function accounts(...usernames: string[]): Promise<void> {
  for (const username of usernames) await running().addUser(username, username);
}

async function login(edge: ClientEndpoint, username: string, resource: string): Promise<DrillClient> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      DrillClient.login(
        { domain: running().config.domain, cert: running().cert },
        edge,
        username,
        username,
        resource,
      ),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${username} could not log in`)), LOGIN_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Initial presence, and its reflection (RFC 6121 §4.2.2), which shows the presence role has it. */
async function available(client: DrillClient): Promise<void> {
  client.write('<presence/>');
  await client.waitFor(
    (el) => el.name === 'presence' && el.attrs.from === client.jid && el.attrs.type === undefined,
    LOGIN_MS,
    'own presence',
  );
}

interface Load {
  /** Messages written so far. */
  sent(): number;
  /** Resolves when the load wrote its last message (its maximum, or after `stop`). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** When each message was written, to measure how long it took to arrive. */
const sentAt = new Map<string, number>();

/**
 * Writes chat messages from `sender` at a steady rate, to each of `targets` in turn, each with a unique
 * id (its body too), recording each in `history` before it is written. Bounded by `max`.
 */
function startLoad(
  history: History,
  sender: DrillClient,
  targets: readonly string[],
  options: { readonly prefix: string; readonly perSecond: number; readonly max: number },
): Load {
  let count = 0;
  const state = { stopped: false };
  const interval = 1000 / options.perSecond;
  const done = (async () => {
    const start = Date.now();
    for (let i = 0; i < options.max && !state.stopped; i++) {
      const to = targets[i % targets.length] ?? sender.bare;
      const id = `${options.prefix}-${i}`;
      history.sent(sender.bare, to.split('/')[0] ?? to, id);
      sentAt.set(id, Date.now());
      sender.write(`<message to='${to}' type='chat' id='${id}'><body>${id}</body></message>`);
      count += 1;
      const wait = start + (i + 1) * interval - Date.now();
      if (wait > 0) await sleep(wait);
    }
  })();
  return {
    sent: () => count,
    done,
    async stop() {
      state.stopped = true;
      await done;
    },
  };
}

/** The senders' final `<r/>`: what each saw acknowledged goes into the history. */
async function acknowledge(
  history: History,
  senders: readonly DrillClient[],
  timeoutMs: number,
): Promise<void> {
  for (const sender of senders) {
    const h = await sender.requestAck(timeoutMs);
    history.acknowledged(sender.bare, h);
  }
}

async function observe(
  history: History,
  recipients: readonly DrillClient[],
  senders: readonly DrillClient[],
): Promise<Observations> {
  if (!postgres) throw new Error('PostgreSQL did not start');
  const owners = [...new Set([...history.recipients(), ...senders.map((s) => s.bare)])];
  const { offline, archived } = await storedMessages(postgres.url, history.recipients(), owners);
  const delivered = new Map<string, string[]>();
  for (const client of recipients) {
    delivered.set(client.bare, [...(delivered.get(client.bare) ?? []), ...client.messageIds()]);
  }
  return { delivered, offline, archived, errors: new Set(senders.flatMap((s) => s.errorIds())) };
}

/**
 * Waits (bounded) until every acknowledged message was delivered, stored offline or answered with an
 * error, then prints the counts and returns them. Messages are archived before they are delivered or
 * stored, so "archived-only" is a passing state, not an end to wait for.
 */
async function checkHistory(
  history: History,
  recipients: readonly DrillClient[],
  senders: readonly DrillClient[],
): Promise<HistoryReport> {
  const done = (r: HistoryReport): boolean => r.delivered + r.offline + r.errors === r.acknowledged;
  const deadline = Date.now() + SETTLE_MS;
  let observed = await observe(history, recipients, senders);
  while (!done(history.check(observed)) && Date.now() < deadline) {
    await sleep(250);
    observed = await observe(history, recipients, senders);
  }
  const report = history.check(observed);
  console.log(formatReport(history.name, report));
  if (report.lost > 0) console.log(await consumerGroups());
  return report;
}

/** How long the received messages took from their write to their arrival: median and maximum. */
function delays(recipients: readonly DrillClient[]): string {
  const ms = recipients
    .flatMap((r) => r.messages())
    .flatMap((m) => {
      const at = sentAt.get(String(m.el.attrs.id));
      return at === undefined ? [] : [m.at - at];
    })
    .sort((a, b) => a - b);
  if (ms.length === 0) return 'no messages arrived';
  return `delay median ${ms[Math.floor(ms.length / 2)] ?? 0} ms, max ${ms[ms.length - 1] ?? 0} ms`;
}

function adminClient() {
  return new Kafka({ clientId: 'starling-drills', brokers: brokers(), logLevel: logLevel.NOTHING }).admin();
}

/** Which router process (by name) consumes each partition of the stanzas topic, and the partition metadata. */
async function stanzaPartitions(): Promise<{ owners: Map<number, string>; metadata: PartitionMetadata[] }> {
  const admin = adminClient();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [TOPIC_STANZAS] });
    const metadata = topics[0]?.partitions ?? [];
    const { groups } = await admin.describeGroups([GROUP_ROUTER]);
    const owners = new Map<number, string>();
    for (const member of groups[0]?.members ?? []) {
      const assignment = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
      const name = running().processes.find((p) => member.clientId.endsWith(`-${p.name}`))?.name;
      for (const partition of assignment?.assignment[TOPIC_STANZAS] ?? []) {
        owners.set(partition, name ?? member.clientId);
      }
    }
    return { owners, metadata };
  } finally {
    await admin.disconnect();
  }
}

/** The partition the bus's producer (kafkajs's default partitioner, keyed by sender) puts `key` in. */
function partitionOf(key: string, metadata: PartitionMetadata[]): number {
  return Partitioners.DefaultPartitioner()({
    topic: TOPIC_STANZAS,
    partitionMetadata: metadata,
    message: { key, value: null },
  });
}

/** For a report: each consumer group's state and members, and how far its commits trail the topic. */
async function consumerGroups(): Promise<string> {
  const admin = adminClient();
  await admin.connect();
  try {
    const lines: string[] = [];
    const topics = {
      [GROUP_ROUTER]: TOPIC_STANZAS,
      [GROUP_PRESENCE]: TOPIC_PRESENCE,
      [GROUP_ARCHIVE]: TOPIC_ARCHIVE,
    };
    const { groups } = await admin.describeGroups(Object.keys(topics));
    for (const group of groups) {
      const topic = topics[group.groupId as keyof typeof topics];
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId: group.groupId, topics: [topic] });
      const lag = ends.map(({ partition, high }) => {
        const at = committed?.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
        return `${partition}:${Number(high) - Math.max(0, Number(at))}`;
      });
      const members = group.members.map((m) => m.clientId).join(',');
      lines.push(
        `group ${group.groupId}: ${group.state}, members [${members}], lag by partition ${lag.join(' ')}`,
      );
    }
    return lines.join('\n');
  } finally {
    await admin.disconnect();
  }
}

/** The router processes that have not exited. */
function liveRouters(): number {
  return running().processes.filter(
    (p) => p.role === 'router' && p.child.exitCode === null && p.child.signalCode === null,
  ).length;
}

const isMessage = (el: Element): boolean => el.name === 'message' && el.attrs.type !== 'error';

describe('fault drills', () => {
  it('kill -9 of an edge: contacts see unavailable within the lease, its stanzas go offline', async () => {
    showRoleLogs(cluster, 400);
    const started = Date.now();
    const dying = role('edge-1');
    await accounts('ek-victim', 'ek-contact', 'ek-sender');
    const victim = await login(endpointOf('edge-1'), 'ek-victim', 'phone');
    const contact = await login(endpointOf('edge-2'), 'ek-contact', 'desk');
    const sender = await login(endpointOf('edge-2'), 'ek-sender', 'load');
    await sender.enableStreamManagement(LOGIN_MS);
    // The contact subscribes to the victim's presence; both are interested (roster fetched) and available.
    for (const client of [victim, contact]) {
      await client.iq(
        "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>",
        'roster',
        LOGIN_MS,
      );
      await available(client);
    }
    contact.write(`<presence to='${victim.bare}' type='subscribe'/>`);
    await victim.waitFor(
      (el) => el.name === 'presence' && el.attrs.type === 'subscribe' && el.attrs.from === contact.bare,
      LOGIN_MS,
      'subscription request',
    );
    victim.write(`<presence to='${contact.bare}' type='subscribed'/>`);
    await contact.waitFor(
      (el) => el.name === 'presence' && el.attrs.from === victim.jid && el.attrs.type === undefined,
      LOGIN_MS,
      "the victim's presence",
    );

    const history = new History('edge kill -9');
    // To the bare and to the full JID in turn: both must reach offline storage once the edge is gone.
    const load = startLoad(history, sender, [victim.bare, victim.jid], {
      prefix: 'ek',
      perSecond: 20,
      max: 1000,
    });
    await victim.waitFor(isMessage, LOGIN_MS, 'a first message');
    await until(() => load.sent() >= 40, LOGIN_MS, '40 messages sent');
    await kill9(dying);
    const killedAt = Date.now();
    const unavailable = await contact.waitFor(
      (el) => el.name === 'presence' && el.attrs.from === victim.jid && el.attrs.type === 'unavailable',
      (LEASE_SECONDS + SWEEP_SECONDS) * 1000 + PRESENCE_MARGIN_MS + 30_000,
      "the victim's unavailable presence",
    );
    const presenceMs = unavailable.at - killedAt;
    // Messages after the sweep too: the victim is then offline in the registry as well.
    const afterSweep = load.sent() + 20;
    await until(() => load.sent() >= afterSweep, LOGIN_MS, 'messages after the sweep');
    await load.stop();
    await acknowledge(history, [sender], SETTLE_MS);

    const report = await checkHistory(history, [victim], [sender]);
    console.log(
      `edge drill: unavailable presence ${presenceMs} ms after kill -9 ` +
        `(lease ${LEASE_SECONDS} s, sweep ${SWEEP_SECONDS} s); ${Date.now() - started} ms in all`,
    );
    expect(report.acknowledged).toBe(history.sentCount());
    expect(report.lost).toBe(0);
    expect(report.outOfOrder).toBe(0);
    expect(report.delivered).toBeGreaterThan(0);
    expect(report.offline).toBeGreaterThan(0);
    expect(presenceMs).toBeLessThan((LEASE_SECONDS + SWEEP_SECONDS) * 1000 + PRESENCE_MARGIN_MS);

    // What was stored reaches the victim at its next login, elsewhere, marked as delayed (XEP-0203).
    const back = await login(endpointOf('edge-2'), 'ek-victim', 'again');
    await available(back);
    await until(
      () => back.messages().length >= report.offline,
      SETTLE_MS,
      `${report.offline} stored messages at login`,
    );
    expect(back.messages().every((m) => m.el.getChild('delay', 'urn:xmpp:delay') !== undefined)).toBe(true);
    for (const client of [back, contact, sender, victim]) await client.close();
  }, 240_000);

  it('kill -9 of a router under load: nothing acknowledged is lost, per-sender order kept', async () => {
    showRoleLogs(cluster, 400);
    const started = Date.now();
    const edge = endpointOf('edge-2');
    await accounts('rk-recipient', ...[0, 1, 2, 3, 4].map((i) => `rk-sender${i}`));
    const recipient = await login(edge, 'rk-recipient', 'inbox');
    await available(recipient);
    const senders: DrillClient[] = [];
    for (let i = 0; i < 5; i++) {
      const sender = await login(edge, `rk-sender${i}`, 'load');
      await sender.enableStreamManagement(LOGIN_MS);
      senders.push(sender);
    }
    // The router to kill is the one consuming the first sender's partition: the drill always hits a
    // sender, whichever way the partitions were assigned.
    const { owners, metadata } = await stanzaPartitions();
    const victimName = owners.get(partitionOf(senders[0]?.bare ?? '', metadata));
    if (victimName === undefined) throw new Error('no router owns the first sender’s partition');
    const hit = senders.filter((s) => owners.get(partitionOf(s.bare, metadata)) === victimName).length;

    const history = new History('router kill -9');
    const loads = senders.map((sender, i) =>
      startLoad(history, sender, [recipient.bare], { prefix: `rk${i}`, perSecond: 16, max: 80 }),
    );
    await recipient.waitFor(isMessage, LOGIN_MS, 'a first message');
    await until(() => (loads[0]?.sent() ?? 0) >= 25, LOGIN_MS, '25 messages from the first sender');
    await kill9(role(victimName));
    await Promise.all(loads.map((l) => l.done));
    await acknowledge(history, senders, SETTLE_MS);

    const report = await checkHistory(history, [recipient], senders);
    console.log(
      `router drill: killed ${victimName}, which consumed the partitions of ${hit} of ${senders.length} ` +
        `senders; ${delays([recipient])}; ${Date.now() - started} ms in all`,
    );
    expect(report.acknowledged).toBe(history.sentCount());
    expect(report.lost).toBe(0);
    expect(report.outOfOrder).toBe(0);
    for (const client of [recipient, ...senders]) await client.close();
  }, 240_000);

  it('Kafka broker restarted under load: clients see delay, not loss', async () => {
    showRoleLogs(cluster, 400);
    if (!kafka) throw new Error('Kafka did not start');
    const broker = kafka;
    const started = Date.now();
    // After the router drill one router remains; its group must have taken over every partition.
    await settleGroups(
      brokers(),
      { [GROUP_ROUTER]: liveRouters(), [GROUP_PRESENCE]: 1, [GROUP_ARCHIVE]: 1 },
      SETTLE_MS,
    );
    const edge = endpointOf('edge-2');
    await accounts('kr-recipient', ...[0, 1, 2].map((i) => `kr-sender${i}`));
    const recipient = await login(edge, 'kr-recipient', 'inbox');
    await available(recipient);
    const senders: DrillClient[] = [];
    for (let i = 0; i < 3; i++) {
      const sender = await login(edge, `kr-sender${i}`, 'load');
      await sender.enableStreamManagement(LOGIN_MS);
      senders.push(sender);
    }
    const history = new History('Kafka restart');
    const loads = senders.map((sender, i) =>
      startLoad(history, sender, [recipient.bare], { prefix: `kr${i}`, perSecond: 15, max: 100 }),
    );
    await recipient.waitFor(isMessage, LOGIN_MS, 'a first message');
    await until(() => (loads[0]?.sent() ?? 0) >= 20, LOGIN_MS, '20 messages from the first sender');
    const restartStarted = Date.now();
    await broker.restart();
    const restartMs = Date.now() - restartStarted;
    await Promise.all(loads.map((l) => l.done));
    await acknowledge(history, senders, SETTLE_MS);

    const report = await checkHistory(history, [recipient], senders);
    console.log(
      `Kafka drill: broker down and up again in ${restartMs} ms; ${delays([recipient])}; ` +
        `${Date.now() - started} ms in all`,
    );
    expect(report.acknowledged).toBe(history.sentCount());
    expect(report.lost).toBe(0);
    expect(report.outOfOrder).toBe(0);
    for (const client of [recipient, ...senders]) await client.close();
  }, 300_000);
});
