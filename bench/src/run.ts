// `npm run bench -- --server starling --scenario chat ...`: starts a server, runs one scenario against it
// on loopback, prints the figures (and appends them as JSON to --json), and stops the server.
import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Transport } from './connection.ts';
import {
  chat,
  chatUsers,
  ensureRosters,
  inPool,
  login,
  presence,
  registerUsers,
  resumeStorm,
  storm,
  type AccountSet,
  type ScenarioContext,
  type ScenarioResult,
} from './scenarios.ts';
import { benchCertificate } from './servers/certificate.ts';
import { startServer, SERVER_KINDS, type ServerKind } from './servers/index.ts';

const SCENARIOS = ['storm', 'chat', 'chat-max', 'presence', 'resume'] as const;
type Scenario = (typeof SCENARIOS)[number];
const TRANSPORTS: readonly Transport[] = ['plain', 'starttls', 'tls'];
const HOST = '127.0.0.1';
const DOMAIN = 'bench.example';

const USAGE = `Usage: npm run bench -- --server ${SERVER_KINDS.join('|')} --scenario ${SCENARIOS.join('|')} [options]

  --transport plain|starttls|tls  how clients connect (default plain)
  --connections N                 storm and resume: clients (default 1000)
  --pairs N                       chat: pairs of users (default 500)
  --rate N                        chat: messages/s; presence: status updates/s (default 5000 / 50)
  --rates A,B,...                 chat-max: the rates tried, in order (default 5000,10000,15000,20000)
  --seconds N                     measured seconds (default 20)
  --warmup N                      chat: seconds sent before measuring (default 3; cluster: 60, for
                                  the broker's JVM to compile its hot paths)
  --drain N                       chat: seconds to wait for deliveries after sending; what has not
                                  arrived by then counts as lost (default 10)
  --users N --roster N            presence: users online and contacts each (default 400, 100)
  --idle N                        storm: seconds idle before memory is read (default 5)
  --concurrency N                 logins in flight at once (default 50)
  --pin                           server on CPU 0, this load generator on CPU 1
  --dir DIR                       where servers keep their data between runs (default bench/.data)
  --json FILE                     append the result as one JSON line
  --profile DIR                   starling: write a V8 CPU profile of the server into DIR
`;

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function count(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0)
    fail(`--${name} wants a positive whole number, not "${value}"`);
  return parsed;
}

function oneOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  name: string,
  fallback?: T,
): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (value === undefined) fail(`--${name} is required`);
  if (!(allowed as readonly string[]).includes(value))
    fail(`--${name} is one of ${allowed.join(', ')}, not "${value}"`);
  return value as T;
}

/** The cluster's broker runs as deployed (both compiler tiers), which takes this long to settle. */
const CLUSTER_WARMUP_S = 60;

function parse(argv: string[]) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        server: { type: 'string' },
        scenario: { type: 'string' },
        transport: { type: 'string' },
        connections: { type: 'string' },
        pairs: { type: 'string' },
        rate: { type: 'string' },
        rates: { type: 'string' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        drain: { type: 'string' },
        users: { type: 'string' },
        roster: { type: 'string' },
        idle: { type: 'string' },
        concurrency: { type: 'string' },
        pin: { type: 'boolean' },
        dir: { type: 'string' },
        json: { type: 'string' },
        profile: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const scenario = oneOf<Scenario>(values.scenario, SCENARIOS, 'scenario');
  const rates = (values.rates ?? '5000,10000,15000,20000').split(',').map((rate) => count(rate, 0, 'rates'));
  const roster = count(values.roster, 100, 'roster');
  if (roster % 2 !== 0) fail('--roster must be even (contacts are the users on either side in a ring)');
  const users = count(values.users, 400, 'users');
  if (users <= roster) fail('--users must be more than --roster');
  const server = oneOf<ServerKind>(values.server, SERVER_KINDS, 'server');
  return {
    server,
    scenario,
    transport: oneOf(values.transport, TRANSPORTS, 'transport', 'plain'),
    connections: count(values.connections, 1000, 'connections'),
    pairs: count(values.pairs, 500, 'pairs'),
    rate: count(values.rate, scenario === 'presence' ? 50 : 5000, 'rate'),
    rates,
    seconds: count(values.seconds, 20, 'seconds'),
    warmup: count(values.warmup, server === 'cluster' ? CLUSTER_WARMUP_S : 3, 'warmup'),
    drain: count(values.drain, 10, 'drain'),
    users,
    roster,
    idle: count(values.idle, 5, 'idle'),
    concurrency: count(values.concurrency, 50, 'concurrency'),
    pin: values.pin === true,
    dir: values.dir ?? new URL('../.data', import.meta.url).pathname,
    json: values.json,
    profile: values.profile,
  };
}

type Options = ReturnType<typeof parse>;

function usersNeeded(options: Options): number {
  switch (options.scenario) {
    case 'storm':
      return options.connections;
    case 'resume':
      return options.connections + 1;
    case 'chat':
    case 'chat-max':
      return options.pairs * 2;
    case 'presence':
      return options.users;
  }
}

/** The accounts a scenario logs in with: the presence scenario's carry rosters, the others' do not. */
function accountsOf(options: Options): AccountSet {
  return options.scenario === 'presence' ? 'p' : 'u';
}

/** Registers what the server's data directory does not have yet (accounts stay between runs). */
async function ensureUsers(
  ctx: ScenarioContext,
  dir: string,
  needed: number,
  accounts: AccountSet,
): Promise<void> {
  const file = join(dir, accounts === 'u' ? 'registered-users' : `registered-users-${accounts}`);
  const have = Number(await readFile(file, 'utf8').catch(() => '0'));
  if (have >= needed) return;
  await registerUsers(ctx, needed, accounts);
  await writeFile(file, String(needed));
}

export function describe(result: ScenarioResult): string {
  const lines = [`${result.scenario}:`];
  for (const [name, value] of Object.entries(result.figures)) {
    lines.push(`  ${name.padEnd(28)} ${Number.isInteger(value) ? String(value) : value.toFixed(2)}`);
  }
  if (result.latency !== undefined) {
    const { p50, p95, p99, max } = result.latency;
    lines.push(
      `  latency ms p50/p95/p99/max     ${[p50, p95, p99, max].map((v) => v.toFixed(2)).join(' / ')}`,
    );
  }
  for (const sample of result.usage) {
    lines.push(
      `  ${sample.name.padEnd(28)} cpu ${sample.cpuSeconds.toFixed(2)} s, rss ${(sample.rssBytes / 1048576).toFixed(1)} MB`,
    );
  }
  return lines.join('\n');
}

async function runScenario(ctx: ScenarioContext, options: Options): Promise<ScenarioResult[]> {
  switch (options.scenario) {
    case 'storm':
      return [await storm(ctx, options.connections, options.idle)];
    case 'resume':
      return [await resumeStorm(ctx, options.connections)];
    case 'chat':
    case 'chat-max': {
      const connections = await chatUsers(ctx, options.pairs);
      const results: ScenarioResult[] = [];
      const rates = options.scenario === 'chat' ? [options.rate] : options.rates;
      for (const rate of rates) {
        const result = await chat(ctx, connections, {
          pairs: options.pairs,
          rate,
          seconds: options.seconds,
          warmupSeconds: options.warmup,
          drainSeconds: options.drain,
          bodyBytes: 64,
        });
        if (options.scenario === 'chat-max') ctx.log(describe(result));
        results.push(result);
        const missed = (result.latency?.p99 ?? Infinity) > 100 || (result.figures.lost ?? 0) > 0;
        if (options.scenario === 'chat-max' && missed) break;
      }
      await inPool(connections.length, 200, (index) => connections[index]!.close());
      return results;
    }
    case 'presence': {
      const connections = await inPool(options.users, ctx.concurrency, (index) =>
        login(ctx, index, { accounts: 'p' }),
      );
      await ensureRosters(ctx, connections, options.roster);
      const result = await presence(ctx, connections, {
        roster: options.roster,
        rate: options.rate,
        seconds: options.seconds,
      });
      await inPool(connections.length, 200, (index) => connections[index]!.close());
      return [result];
    }
  }
}

export async function main(argv: string[]): Promise<void> {
  const options = parse(argv);
  if (options.pin) spawnSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' });
  const serverDir = join(options.dir, options.server);
  await mkdir(serverDir, { recursive: true });
  const certificate = await benchCertificate(options.dir, DOMAIN);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const server = await startServer(options.server, {
    dir: serverDir,
    domain: DOMAIN,
    host: HOST,
    cert: certificate.cert,
    key: certificate.key,
    ...(options.pin ? { cpu: 0 } : {}),
    ...(options.profile !== undefined ? { profileDir: options.profile } : {}),
  });
  // Interrupted, the run still stops its server: a benchmark leaves no process behind.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the server`);
      void server.stop().finally(() => process.exit(130));
    });
  }
  try {
    const ctx: ScenarioContext = {
      targets: server.endpoints.map((endpoint) => ({ host: HOST, domain: DOMAIN, ...endpoint })),
      transport: options.transport,
      components: server.components,
      ...(server.counters === undefined ? {} : { counters: server.counters }),
      concurrency: options.concurrency,
      log,
    };
    await ensureUsers(ctx, serverDir, usersNeeded(options), accountsOf(options));
    const results = await runScenario(ctx, options);
    const at = new Date().toISOString();
    for (const result of results) {
      if (options.scenario !== 'chat-max') log(describe(result));
      const record = {
        at,
        server: server.name,
        transport: options.transport,
        pinned: options.pin,
        ...result,
      };
      process.stdout.write(`${JSON.stringify(record)}\n`);
      if (options.json !== undefined) await appendFile(options.json, `${JSON.stringify(record)}\n`);
    }
  } finally {
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  await main(process.argv.slice(2));
}
