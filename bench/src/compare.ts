// `npm run bench:compare`: the same scenarios against Starling (embedded) and ejabberd, interleaved
// A/B/A/B, each run in a fresh load-generator process with the server on CPU 0 and the generator on CPU 1.
// Writes the medians and the ratios into docs/benchmarks.md between its result markers.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { format, resolveConfig } from 'prettier';
import { STORM_WARMUP } from './scenarios.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const RUN = join(ROOT, 'bench/src/run.ts');
const WARMUP_LOGINS = STORM_WARMUP.toLocaleString('en');
const DOC = join(ROOT, 'docs/benchmarks.md');
const BEGIN = '<!-- comparison:begin -->';
const END = '<!-- comparison:end -->';
/** One run may not take longer than this: every run is bounded. */
const RUN_TIMEOUT_MS = 15 * 60_000;

interface Case {
  /** For `--only` and the case's own section in the document. */
  readonly id: string;
  readonly title: string;
  readonly args: readonly string[];
  /** The figures shown, with how each is named in the table. */
  readonly figures: readonly (readonly [string, string])[];
  /** The servers run; by default those whose archive setting makes no difference to the case. */
  readonly servers?: readonly Server[];
}

const LATENCY: readonly (readonly [string, string])[] = [
  ['p50', 'latency p50 (ms)'],
  ['p99', 'latency p99 (ms)'],
];

/**
 * Starling archives every message by default, as ejabberd does with mod_mam; both are also measured without
 * archives (Debian's ejabberd has no mod_mam in its default module set).
 */
const ALL_SERVERS = ['starling', 'starling-noarchive', 'ejabberd', 'ejabberd-nomam'] as const;
type Server = (typeof ALL_SERVERS)[number];
const DEFAULT_SERVERS: readonly Server[] = ['starling', 'ejabberd', 'ejabberd-nomam'];
const LABELS: Readonly<Record<Server, string>> = {
  starling: 'Starling',
  'starling-noarchive': 'Starling, no archive',
  ejabberd: 'ejabberd + MAM',
  'ejabberd-nomam': 'ejabberd, no MAM',
};
/** The ratios shown, Starling's figure over the other's, where a case ran both. */
const RATIOS: readonly (readonly [Server, Server])[] = [
  ['starling', 'ejabberd'],
  ['starling', 'ejabberd-nomam'],
  ['starling-noarchive', 'ejabberd-nomam'],
];

const CASES: readonly Case[] = [
  {
    id: 'chat',
    title: 'chat, 1,000 users in pairs, 5,000 msg/s, plain TCP',
    args: ['--scenario', 'chat', '--pairs', '500', '--rate', '5000', '--seconds', '20'],
    servers: ALL_SERVERS,
    figures: [
      ['cpu_us_per_msg', 'server CPU per delivered message (µs)'],
      ['delivered_msgs_per_s', 'delivered msg/s'],
      ['lost', 'lost'],
      ...LATENCY,
    ],
  },
  {
    id: 'storm-plain',
    title: 'connection storm, 2,000 clients, plain TCP (SCRAM-SHA-256, bind, roster, presence)',
    args: ['--scenario', 'storm', '--connections', '2000', '--transport', 'plain'],
    figures: [
      ['cpu_ms_per_login', 'server CPU per login (ms)'],
      ['cpu_ms_per_login_warmup', `server CPU per login of the warm-up round, ${WARMUP_LOGINS} logins (ms)`],
      ['logins_per_s', 'logins/s'],
    ],
  },
  {
    id: 'storm-tls',
    title: 'connection storm, 2,000 clients, direct TLS',
    args: ['--scenario', 'storm', '--connections', '2000', '--transport', 'tls'],
    figures: [
      ['cpu_ms_per_login', 'server CPU per login (ms)'],
      ['cpu_ms_per_login_warmup', `server CPU per login of the warm-up round, ${WARMUP_LOGINS} logins (ms)`],
      ['logins_per_s', 'logins/s'],
    ],
  },
  {
    id: 'idle-tls',
    title: 'idle connections, 10,000 clients over TLS, idle 30 s',
    // Idle long enough for Starling's parsers to hibernate (limits.hibernateSeconds, 10 s by default).
    args: [
      '--scenario',
      'storm',
      '--connections',
      '10000',
      '--transport',
      'tls',
      '--concurrency',
      '100',
      '--idle',
      '30',
    ],
    figures: [
      ['rss_kb_per_idle_connection', 'server RSS per idle connection (KB)'],
      ['cpu_ms_per_login', 'server CPU per login (ms)'],
      ['still_open', 'connections open after idling'],
    ],
  },
  {
    id: 'presence',
    title: 'presence fan-out, 400 users with 100 contacts each, 100 status changes/s',
    args: ['--scenario', 'presence', '--users', '400', '--roster', '100', '--rate', '100', '--seconds', '20'],
    figures: [
      ['cpu_us_per_delivery', 'server CPU per delivered presence (µs)'],
      ['delivered_per_s', 'presence deliveries/s'],
      ['lost', 'lost'],
      ...LATENCY,
    ],
  },
  {
    id: 'resume',
    title: 'reconnect storm with XEP-0198 resumption, 1,000 clients, plain TCP',
    args: ['--scenario', 'resume', '--connections', '1000'],
    figures: [
      ['cpu_ms_per_resume', 'server CPU per resumption (ms)'],
      ['resumes_per_s', 'resumptions/s'],
      ['failed_resumes', 'failed resumptions'],
      ['lost', 'queued messages lost'],
    ],
  },
];

interface RunRecord {
  readonly server: string;
  readonly scenario: string;
  readonly figures: { readonly [name: string]: number };
  readonly latency?: { readonly [name: string]: number };
}

function runOnce(server: string, args: readonly string[], out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', RUN, '--server', server, '--pin', '--json', out, ...args],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const timer = setTimeout(() => child.kill('SIGTERM'), RUN_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${server} ${args.join(' ')}: exited with ${String(code ?? signal)}`));
    });
  });
}

function figure(record: RunRecord, name: string): number | undefined {
  return record.figures[name] ?? record.latency?.[name];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function show(value: number | undefined): string {
  if (value === undefined) return '–';
  if (Number.isInteger(value)) return value.toLocaleString('en');
  return value >= 100 ? Math.round(value).toLocaleString('en') : value.toPrecision(3);
}

function table(item: Case, results: ReadonlyMap<string, RunRecord[]>): string {
  const servers = item.servers ?? DEFAULT_SERVERS;
  const ratios = RATIOS.filter(([ours, theirs]) => servers.includes(ours) && servers.includes(theirs));
  const lines = [
    `**${item.title}** (median of the runs: ${servers.map((server) => `${LABELS[server]} ${String(results.get(server)?.length ?? 0)}`).join(', ')})`,
    '',
    `| figure | ${servers.map((server) => LABELS[server]).join(' | ')} | ${ratios.map(([ours, theirs]) => `${LABELS[ours]} / ${LABELS[theirs]}`).join(' | ')} |`,
    `|---|${'---|'.repeat(servers.length + ratios.length)}`,
  ];
  for (const [name, label] of item.figures) {
    const medians = new Map(
      servers.map((server) => {
        const values = (results.get(server) ?? [])
          .map((record) => figure(record, name))
          .filter((value): value is number => value !== undefined);
        return [server, values.length > 0 ? median(values) : undefined];
      }),
    );
    const shown = ratios.map(([ours, theirs]) => {
      const a = medians.get(ours);
      const b = medians.get(theirs);
      return a !== undefined && b !== undefined && b !== 0 ? (a / b).toFixed(2) : '–';
    });
    lines.push(
      `| ${label} | ${servers.map((server) => show(medians.get(server))).join(' | ')} | ${shown.join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  let ejabberd = 'ejabberd';
  try {
    ejabberd = execFileSync('dpkg-query', ['-W', '-f', 'ejabberd ${Version}', 'ejabberd'], {
      encoding: 'utf8',
    });
  } catch {
    // The version is only for the report.
  }
  const os = /^PRETTY_NAME="?([^"\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  return `${String(cpus().length)} × ${cpu}, ${os}, Node.js ${process.version}, ${ejabberd}`;
}

/** The results of one case, kept between runs so that `--only` redoes one case and leaves the others. */
interface CaseResults {
  readonly date: string;
  readonly command: string;
  readonly results: { readonly [server: string]: RunRecord[] };
  readonly failures: readonly string[];
}

async function runCase(item: Case, rounds: number, dir: string): Promise<CaseResults> {
  const servers = item.servers ?? DEFAULT_SERVERS;
  const results = new Map<string, RunRecord[]>(servers.map((server) => [server, []]));
  const failures: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const server of servers) {
      const out = join(dir, `${item.id}-${server}-${String(round)}.jsonl`);
      await rm(out, { force: true });
      process.stderr.write(
        `\n== ${item.title}: ${server}, round ${String(round + 1)} of ${String(rounds)}\n`,
      );
      try {
        await runOnce(server, item.args, out);
      } catch (err) {
        // A run that failed is reported, not averaged away; the other runs go on.
        failures.push(`${LABELS[server]}, round ${String(round + 1)}: ${(err as Error).message}`);
        continue;
      }
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      results.get(server)!.push(JSON.parse(lines[lines.length - 1]!) as RunRecord);
    }
  }
  return {
    date: new Date().toISOString().slice(0, 10),
    command: `npm run bench:compare -- --rounds ${String(rounds)} --only ${item.id}`,
    results: Object.fromEntries(results),
    failures,
  };
}

function section(item: Case, saved: CaseResults): string {
  return [
    table(item, new Map(Object.entries(saved.results))),
    '',
    `Measured ${saved.date} with \`${saved.command}\`.`,
    ...saved.failures.map((line) => `Failed run: ${line.split('\n')[0] ?? ''}`),
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string' }, only: { type: 'string' } },
  });
  const rounds = Number(values.rounds ?? '2');
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds wants a positive whole number');
  const wanted = values.only?.split(',');
  const unknown = wanted?.filter((id) => !CASES.some((item) => item.id === id)) ?? [];
  if (unknown.length > 0) {
    throw new Error(
      `--only takes case names: ${CASES.map((item) => item.id).join(', ')} (not ${unknown.join(', ')})`,
    );
  }
  const dir = join(ROOT, 'bench/.data/compare');
  await mkdir(dir, { recursive: true });
  for (const item of CASES) {
    if (wanted !== undefined && !wanted.includes(item.id)) continue;
    const saved = await runCase(item, rounds, dir);
    await writeFile(join(dir, `${item.id}.json`), JSON.stringify(saved));
  }
  const sections: string[] = [];
  for (const item of CASES) {
    const text = await readFile(join(dir, `${item.id}.json`), 'utf8').catch(() => undefined);
    if (text !== undefined) sections.push(section(item, JSON.parse(text) as CaseResults));
  }
  const report = [
    BEGIN,
    `On ${machine()}. Server pinned to CPU 0, load generator to CPU 1, loopback only; within each round`,
    'the servers take turns (A/B/C, A/B/C), each run with a new server and a new load-generator process.',
    '',
    sections.join('\n\n'),
    END,
  ].join('\n');
  const doc = await readFile(DOC, 'utf8');
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${DOC} has no ${BEGIN} … ${END} section`);
  const text = doc.slice(0, start) + report + doc.slice(end + END.length);
  // Formatted as `npm test` checks it, so a new comparison is committed as written.
  const config = (await resolveConfig(DOC)) ?? {};
  await writeFile(DOC, await format(text, { ...config, filepath: DOC }));
  process.stderr.write(`\nwrote the comparison into ${DOC}\n`);
}

await main();
