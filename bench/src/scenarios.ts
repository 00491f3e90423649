// The benchmark scenarios. Each drives a running server through connections of its own and reports figures
// together with what the server's processes spent, read from /proc over the measured window.
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection, markerText, now, type Target, type Transport } from './connection.ts';
import { sampleComponents, usageBetween, type Component, type ComponentSample } from './proc.ts';
import { Latencies, type LatencySummary } from './stats.ts';

export const PASSWORD = 'bench-pass-0';
/**
 * Logins (closed again) before a storm's CPU is measured. V8 was still optimizing the login path after 200:
 * measured after 200, a login cost about twice what it did after 2,000 (2026-11-21, plain TCP).
 */
export const STORM_WARMUP = 2000;
/** Subscription stanzas per second while rosters are set up: a flood would only measure the queue. */
const ROSTER_SETUP_RATE = 2000;
/**
 * How long a roster request may wait while the server works through the set-up. ejabberd, pinned to one
 * core, took longer than 120 s to work through the 80,000 subscription stanzas of 400 new rosters of 100.
 */
const ROSTER_WAIT_MS = 300_000;

export interface ScenarioContext {
  /** One per edge; user i connects to targets[i mod length]. */
  readonly targets: readonly Target[];
  readonly transport: Transport;
  readonly components: readonly Component[];
  /** The server's backend counters, when it has backends. */
  readonly counters?: () => Promise<Readonly<Record<string, number>>>;
  /** Logins (and registrations) in flight at once. */
  readonly concurrency: number;
  readonly log: (line: string) => void;
}

export interface ScenarioResult {
  readonly scenario: string;
  /** Named figures, each with its unit in the name (e.g. `cpu_us_per_msg`). */
  readonly figures: Record<string, number>;
  readonly latency?: LatencySummary | undefined;
  /** What each server component spent over the measured window. */
  readonly usage: readonly ComponentSample[];
}

/** The edge user `index` connects to. */
export function targetOf(ctx: ScenarioContext, index: number): Target {
  return ctx.targets[index % ctx.targets.length]!;
}

/**
 * Accounts come in two sets: `u` accounts have empty rosters (storm, chat, resume), `p` accounts get the
 * presence scenario's rosters. Kept apart, a presence run does not make later logins in the same data
 * directory broadcast to a hundred contacts each.
 */
export type AccountSet = 'u' | 'p';

export function userName(index: number, accounts: AccountSet = 'u'): string {
  return `${accounts}${String(index)}`;
}

/** Runs `task` for 0..count-1 with at most `concurrency` in flight; the first failure rejects. */
export async function inPool<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  async function lane(): Promise<void> {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}

/** Registers users 0..count-1 of a set over XEP-0077 (existing accounts are fine). */
export async function registerUsers(
  ctx: ScenarioContext,
  count: number,
  accounts: AccountSet = 'u',
): Promise<void> {
  const started = now();
  await inPool(count, ctx.concurrency, async (index) => {
    const connection = await Connection.open(targetOf(ctx, index), 'plain');
    await connection.register(userName(index, accounts), PASSWORD);
    await connection.close();
  });
  ctx.log(`registered ${String(count)} users in ${((now() - started) / 1000).toFixed(1)} s`);
}

export interface LoginOptions {
  readonly accounts?: AccountSet;
  readonly presence?: boolean;
  readonly streamManagement?: boolean;
}

/** Connect, SCRAM-SHA-256, bind, roster, initial presence: what a client does at start. */
export async function login(
  ctx: ScenarioContext,
  index: number,
  options: LoginOptions = {},
): Promise<Connection> {
  const connection = await Connection.open(targetOf(ctx, index), ctx.transport);
  await connection.authenticate(userName(index, options.accounts), PASSWORD);
  await connection.bind('bench');
  if (options.streamManagement === true) await connection.enableStreamManagement();
  await connection.roster();
  if (options.presence !== false) connection.write('<presence/>');
  connection.startScanning();
  return connection;
}

async function closeAll(connections: readonly Connection[]): Promise<void> {
  await inPool(connections.length, 200, (index) => connections[index]!.close());
}

function cpuMs(usage: readonly ComponentSample[]): number {
  return usage.reduce((sum, sample) => sum + sample.cpuSeconds, 0) * 1000;
}

function rssBytes(usage: readonly ComponentSample[]): number {
  return usage.reduce((sum, sample) => sum + sample.rssBytes, 0);
}

/**
 * Connection storm: `count` clients log in (`concurrency` at a time) and stay idle. Reports logins/s and
 * server CPU per login of a warm server, the CPU per login of the warm-up round (the first logins after
 * the server started), and the server's resident memory per idle connection.
 */
export async function storm(
  ctx: ScenarioContext,
  count: number,
  idleSeconds: number,
  warmup: number = STORM_WARMUP,
): Promise<ScenarioResult> {
  // Memory is measured from before the warm-up: the heap the warm-up round grew (and left free) would
  // otherwise hold the connections measured after it. With no more warm-up logins than measured ones,
  // what the warm-up left is at most what the measured connections need.
  const first = Math.min(count, warmup);
  const fresh = sampleComponents(ctx.components);
  const warm = await inPool(first, ctx.concurrency, (index) => login(ctx, index));
  const warmedUp = sampleComponents(ctx.components);
  await closeAll(warm);
  const countedBefore = await ctx.counters?.();
  const before = sampleComponents(ctx.components);
  const started = now();
  const connections = await inPool(count, ctx.concurrency, (index) => login(ctx, index));
  const seconds = (now() - started) / 1000;
  const loggedIn = usageBetween(before, sampleComponents(ctx.components));
  const backendFigures = await perOperation(ctx, countedBefore, count, 'login');
  ctx.log(`${String(count)} logins in ${seconds.toFixed(1)} s; idle for ${String(idleSeconds)} s`);
  await sleep(idleSeconds * 1000);
  const idle = sampleComponents(ctx.components);
  const open = connections.filter((connection) => !connection.closed).length;
  await closeAll(connections);
  return {
    scenario: 'storm',
    figures: {
      connections: count,
      still_open: open,
      logins_per_s: count / seconds,
      cpu_ms_per_login: cpuMs(loggedIn) / count,
      ...(first > 0 ? { cpu_ms_per_login_warmup: cpuMs(usageBetween(fresh, warmedUp)) / first } : {}),
      rss_kb_per_idle_connection: (rssBytes(idle) - rssBytes(fresh)) / 1024 / count,
      rss_mb_idle: rssBytes(idle) / 1024 / 1024,
      ...perComponentRss(fresh, idle, count),
      ...backendFigures,
    },
    usage: loggedIn,
  };
}

/**
 * With several server processes, each one's growth per connection: the sum alone mixes the edges' share
 * with the swings of a JVM's or a database's memory.
 */
function perComponentRss(
  before: readonly ComponentSample[],
  after: readonly ComponentSample[],
  connections: number,
): Record<string, number> {
  if (after.length < 2) return {};
  return Object.fromEntries(
    after.map((sample, index) => [
      `rss_kb_per_idle_connection_${sample.name}`,
      (sample.rssBytes - (before[index]?.rssBytes ?? 0)) / 1024 / connections,
    ]),
  );
}

/**
 * The backends' work per operation since `start`, counted once what the operations set off has settled;
 * nothing for a server without backend counters.
 */
async function perOperation(
  ctx: ScenarioContext,
  start: Readonly<Record<string, number>> | undefined,
  operations: number,
  unit: string,
): Promise<Record<string, number>> {
  if (start === undefined || ctx.counters === undefined) return {};
  await sleep(1000);
  const end = await ctx.counters();
  const figures: Record<string, number> = {};
  for (const [name, value] of Object.entries(end)) {
    figures[`${name}_per_${unit}`] = (value - (start[name] ?? 0)) / Math.max(1, operations);
  }
  return figures;
}

/** Sends `rate` stanzas per second for `seconds`, calling `send(seq)` for each. Returns how many went. */
async function paced(
  rate: number,
  seconds: number,
  send: (seq: number, at: number) => void,
): Promise<number> {
  const started = now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - started) / 1000) * rate));
    while (sent < due) send(sent++, now());
    await sleep(1);
  }
  return sent;
}

export interface ChatOptions {
  readonly pairs: number;
  readonly rate: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Seconds to wait after sending for what is still on its way; missing after that counts as lost. */
  readonly drainSeconds: number;
  readonly bodyBytes: number;
}

/** Logs in 2 × pairs users; each pair chats both ways. Returns the connections, in user order. */
export async function chatUsers(ctx: ScenarioContext, pairs: number): Promise<Connection[]> {
  return inPool(pairs * 2, ctx.concurrency, (index) => login(ctx, index));
}

/**
 * One-to-one chat at a fixed total rate over logged-in `connections` (partners are 2k and 2k+1).
 * Latency is send-to-receipt in this process; CPU is what the server spent while sending after warm-up.
 */
export async function chat(
  ctx: ScenarioContext,
  connections: readonly Connection[],
  options: ChatOptions,
): Promise<ScenarioResult> {
  const total = Math.round(options.rate * (options.seconds + options.warmupSeconds));
  const received = new Uint8Array(total);
  const latencies = new Latencies();
  let measureFrom = Infinity;
  let delivered = 0;
  let duplicates = 0;
  let deliveredInWindow = 0;
  let windowEnd = Infinity;
  for (const connection of connections) {
    connection.onMarker = (seq, sentAt, receivedAt) => {
      if (seq >= total) return;
      if (received[seq] === 1) {
        duplicates++;
        return;
      }
      received[seq] = 1;
      delivered++;
      if (receivedAt >= measureFrom && receivedAt <= windowEnd) deliveredInWindow++;
      if (sentAt >= measureFrom) latencies.add(receivedAt - sentAt);
    };
  }
  const warmupCount = Math.round(options.rate * options.warmupSeconds);
  let before: ComponentSample[] = [];
  let countedBefore: Promise<Readonly<Record<string, number>>> | undefined;
  const users = connections.length;
  const sent = await paced(options.rate, options.seconds + options.warmupSeconds, (seq) => {
    if (seq === warmupCount) {
      before = sampleComponents(ctx.components);
      countedBefore = ctx.counters?.();
      // Awaited after the run, where a failure is reported; until then it must not count as unhandled.
      countedBefore?.catch(() => undefined);
      measureFrom = now();
    }
    // Senders take turns so that every user sends and receives the same share.
    const from = connections[seq % users]!;
    const to = connections[(seq % users) ^ 1]!;
    from.write(
      `<message to='${to.jid}' type='chat' id='m${String(seq)}'><body>${markerText(seq, options.bodyBytes)}</body></message>`,
    );
  });
  windowEnd = now();
  const usage = usageBetween(before, sampleComponents(ctx.components));
  const drainUntil = now() + options.drainSeconds * 1000;
  while (delivered < sent && now() < drainUntil) await sleep(20);
  const windowSeconds = (windowEnd - measureFrom) / 1000;
  const backendFigures = await perOperation(ctx, await countedBefore, sent - warmupCount, 'msg');
  return {
    scenario: 'chat',
    figures: {
      users,
      rate_msgs_per_s: options.rate,
      sent,
      delivered,
      lost: sent - delivered,
      duplicates,
      delivered_msgs_per_s: deliveredInWindow / windowSeconds,
      cpu_us_per_msg: (cpuMs(usage) * 1000) / Math.max(1, deliveredInWindow),
      rss_mb: rssBytes(usage) / 1024 / 1024,
      ...backendFigures,
    },
    latency: latencies.summary(),
    usage,
  };
}

/**
 * Mutual subscriptions in a ring: user i and the `roster / 2` users after it. Done over XMPP (subscribe
 * both ways, then approve both ways), so every server gets the same rosters.
 */
export async function ensureRosters(
  ctx: ScenarioContext,
  connections: readonly Connection[],
  roster: number,
) {
  const users = connections.length;
  const half = roster / 2;
  // A set-up cut short leaves some rosters partly done: every user's is checked, and asking again is harmless.
  const done = await inPool(
    users,
    50,
    async (index) => (await countRoster(connections[index]!, true)) >= roster,
  );
  if (done.every(Boolean)) return;
  const bare = (index: number): string => connections[index % users]!.jid.split('/')[0]!;
  const pairs: [number, number][] = [];
  for (let index = 0; index < users; index++) {
    for (let distance = 1; distance <= half; distance++) pairs.push([index, (index + distance) % users]);
  }
  const perSecond = ROSTER_SETUP_RATE / 2;
  for (const type of ['subscribe', 'subscribed']) {
    await paced(perSecond, pairs.length / perSecond, (seq) => {
      const [a, b] = pairs[seq]!;
      connections[a]!.write(`<presence to='${bare(b)}' type='${type}'/>`);
      connections[b]!.write(`<presence to='${bare(a)}' type='${type}'/>`);
    });
    await sleep(3000);
  }
  const deadline = now() + ROSTER_WAIT_MS;
  for (const connection of connections) {
    while ((await countRoster(connection, true)) < roster) {
      if (now() > deadline) throw new Error(`${connection.jid}: roster not complete after set-up`);
      await sleep(500);
    }
  }
  ctx.log(`rosters of ${String(roster)} mutual contacts for ${String(users)} users`);
}

async function countRoster(connection: Connection, both = false): Promise<number> {
  connection.write(`<iq type='get' id='rc'><query xmlns='jabber:iq:roster'/></iq>`);
  const match = await connection.expect(
    /<iq\b[^>]*\bid=['"]rc['"][^>]*?(?:\/>|>([\s\S]*?)<\/iq>)/,
    ROSTER_WAIT_MS,
  );
  const items = match[1] ?? '';
  return (both ? items.match(/subscription=['"]both['"]/g) : items.match(/<item\b/g))?.length ?? 0;
}

export interface PresenceOptions {
  readonly roster: number;
  readonly rate: number;
  readonly seconds: number;
}

/**
 * Presence fan-out: every user is online with `roster` mutual contacts; users take turns changing their
 * status at `rate` updates/s, and each update goes to every contact.
 */
export async function presence(
  ctx: ScenarioContext,
  connections: readonly Connection[],
  options: PresenceOptions,
): Promise<ScenarioResult> {
  const latencies = new Latencies();
  let delivered = 0;
  for (const [index, connection] of connections.entries()) {
    connection.onMarker = (seq, sentAt, receivedAt) => {
      // Servers reflect a presence update to the sender's own resource: that is not fan-out.
      if (seq % connections.length === index) return;
      delivered++;
      latencies.add(receivedAt - sentAt);
    };
  }
  const before = sampleComponents(ctx.components);
  const started = now();
  const updates = await paced(options.rate, options.seconds, (seq) => {
    connections[seq % connections.length]!.write(
      `<presence><status>${markerText(seq, 32)}</status></presence>`,
    );
  });
  const sendSeconds = (now() - started) / 1000;
  const expected = updates * options.roster;
  const drainUntil = now() + 15_000;
  while (delivered < expected && now() < drainUntil) await sleep(20);
  const usage = usageBetween(before, sampleComponents(ctx.components));
  return {
    scenario: 'presence',
    figures: {
      users: connections.length,
      roster: options.roster,
      updates,
      updates_per_s: updates / sendSeconds,
      expected_deliveries: expected,
      delivered,
      lost: expected - delivered,
      delivered_per_s: delivered / sendSeconds,
      cpu_us_per_delivery: (cpuMs(usage) * 1000) / Math.max(1, delivered),
      cpu_us_per_update: (cpuMs(usage) * 1000) / Math.max(1, updates),
    },
    latency: latencies.summary(),
    usage,
  };
}

/**
 * Reconnect storm with resumption: `count` clients with XEP-0198 lose their connections at once, then
 * all reconnect and resume (`concurrency` at a time). Messages sent to them while they were away must
 * arrive on the resumed streams.
 */
export async function resumeStorm(ctx: ScenarioContext, count: number): Promise<ScenarioResult> {
  const connections = await inPool(count, ctx.concurrency, (index) =>
    login(ctx, index, { streamManagement: true }),
  );
  const states = connections.map((connection) => ({ id: connection.smId!, handled: connection.handled }));
  for (const connection of connections) connection.drop();
  // Let the server see the connections go before the storm; sessions wait detached.
  await sleep(2000);
  const sender = await Connection.open(targetOf(ctx, count), ctx.transport);
  await sender.authenticate(userName(count), PASSWORD);
  await sender.bind('sender');
  for (let index = 0; index < count; index++) {
    sender.write(
      `<message to='${connections[index]!.jid}' type='chat'><body>${markerText(index, 32)}</body></message>`,
    );
  }
  await sleep(2000);
  const arrived = new Uint8Array(count);
  let delivered = 0;
  const before = sampleComponents(ctx.components);
  const started = now();
  let failures = 0;
  const resumed = await inPool(count, ctx.concurrency, async (index) => {
    // Resumed on the other edge where there are two: the stream moves with the client.
    const connection = await Connection.open(targetOf(ctx, index + 1), ctx.transport);
    connection.onMarker = (seq) => {
      if (seq < count && arrived[seq] === 0) {
        arrived[seq] = 1;
        delivered++;
      }
    };
    await connection.authenticate(userName(index), PASSWORD);
    const state = states[index]!;
    try {
      await connection.resume(state.id, state.handled);
    } catch {
      failures++;
    }
    return connection;
  });
  const seconds = (now() - started) / 1000;
  const usage = usageBetween(before, sampleComponents(ctx.components));
  const drainUntil = now() + 10_000;
  while (delivered < count && now() < drainUntil) await sleep(20);
  await closeAll([...resumed, sender]);
  return {
    scenario: 'resume',
    figures: {
      connections: count,
      resumes_per_s: count / seconds,
      failed_resumes: failures,
      cpu_ms_per_resume: cpuMs(usage) / count,
      queued_messages: count,
      queued_delivered: delivered,
      lost: count - delivered,
    },
    usage,
  };
}
