// The load generator against a real embedded Starling, with small counts: every scenario must log its
// clients in, measure, and find nothing lost. Speed itself is measured by `npm run bench`, not here.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { archiveFileFor, openSqlite } from '@starling/store';
import { freePort } from '../../deploy/local/free-port.ts';
import { sampleProcess } from './proc.ts';
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
  type ScenarioContext,
} from './scenarios.ts';
import { benchCertificate } from './servers/certificate.ts';
import type { RunningServer } from './servers/server.ts';
import { startStarling } from './servers/starling.ts';
import { Latencies } from './stats.ts';

const DOMAIN = 'bench.example';

describe('the load generator', () => {
  let dir: string;
  let server: RunningServer;
  let ctx: ScenarioContext;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'starling-bench-'));
    const { cert, key } = await benchCertificate(dir, DOMAIN);
    const [c2sPort, directTlsPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    server = await startStarling({
      dir: join(dir, 'starling'),
      domain: DOMAIN,
      host: '127.0.0.1',
      c2sPort,
      directTlsPort,
      httpPort,
      cert,
      key,
    });
    ctx = {
      targets: server.endpoints.map((endpoint) => ({ host: '127.0.0.1', domain: DOMAIN, ...endpoint })),
      transport: 'plain',
      components: server.components,
      concurrency: 10,
      log: () => undefined,
    };
    await registerUsers(ctx, 21);
    await registerUsers(ctx, 12, 'p');
  }, 90_000);

  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs clients in over plain TCP and TLS, and reads what the server spent', async () => {
    for (const transport of ['plain', 'starttls', 'tls'] as const) {
      const result = await storm({ ...ctx, transport }, 10, 0);
      expect(result.figures).toMatchObject({ connections: 10, still_open: 10 });
      expect(result.figures.logins_per_s).toBeGreaterThan(0);
      // The ten logins of the warm-up round are measured on their own.
      expect(result.figures.cpu_ms_per_login_warmup).toEqual(expect.any(Number));
      expect(result.usage[0]?.name).toBe('starling');
      expect(result.usage[0]?.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
    }
  });

  it('delivers every chat message once and measures its latency', async () => {
    const connections = await chatUsers(ctx, 5);
    const result = await chat(ctx, connections, {
      pairs: 5,
      rate: 200,
      seconds: 2,
      warmupSeconds: 1,
      drainSeconds: 10,
      bodyBytes: 64,
    });
    await inPool(connections.length, 10, (index) => connections[index]!.close());
    expect(result.figures).toMatchObject({ users: 10, sent: 600, delivered: 600, lost: 0, duplicates: 0 });
    expect(result.latency!.p50).toBeGreaterThan(0);
    expect(result.latency!.max).toBeGreaterThanOrEqual(result.latency!.p99);
    expect(result.latency!.max).toBeLessThan(10_000);
  });

  it('fans presence out to every contact, on accounts of their own', async () => {
    const connections = await inPool(12, 10, (index) => login(ctx, index, { accounts: 'p' }));
    await ensureRosters(ctx, connections, 4);
    const result = await presence(ctx, connections, { roster: 4, rate: 20, seconds: 1 });
    await inPool(connections.length, 10, (index) => connections[index]!.close());
    expect(result.figures, JSON.stringify(result.figures)).toMatchObject({
      updates: 20,
      expected_deliveries: 80,
      delivered: 80,
      lost: 0,
    });
    // The other scenarios' accounts keep empty rosters: a login there measures no presence broadcast.
    const plain = await login(ctx, 0, { presence: false });
    expect(await plain.roster()).toBe(0);
    await plain.close();
  });

  it('resumes dropped streams and delivers what was queued for them', async () => {
    const result = await resumeStorm(ctx, 10);
    expect(result.figures).toMatchObject({
      connections: 10,
      failed_resumes: 0,
      queued_delivered: 10,
      lost: 0,
    });
  });
});

describe('measuring', () => {
  it('reads CPU time and resident memory of a process from /proc', () => {
    const before = sampleProcess(process.pid)!;
    const start = process.cpuUsage();
    while (process.cpuUsage(start).user < 200_000) Math.sqrt(Math.random());
    const after = sampleProcess(process.pid)!;
    // /proc counts in ticks of 10 ms.
    expect(after.cpuSeconds - before.cpuSeconds).toBeGreaterThanOrEqual(0.18);
    expect(after.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(sampleProcess(2 ** 22 + 1)).toBeUndefined();
  });

  it('computes percentiles over every sample', () => {
    const latencies = new Latencies();
    for (let value = 1000; value >= 1; value--) latencies.add(value);
    expect(latencies.summary()).toEqual({ p50: 501, p95: 951, p99: 991, max: 1000 });
    // Nothing measured arrived (a server far behind): no latency at all, rather than 0 ms.
    expect(new Latencies().summary()).toBeUndefined();
  });

  it('says what to fix when called wrongly', () => {
    const result = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'bench/src/run.ts', '--scenario', 'chat', '--server', 'prosody'],
      {
        encoding: 'utf8',
      },
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^bench: --server is one of starling, .*ejabberd.*, not "prosody"/);
  });

  it('writes every archive row, added directly or staged and moved', async () => {
    const script = 'bench/src/archive-rows.ts';
    const dir = await mkdtemp(join(tmpdir(), 'starling-archive-rows-test-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    for (const [name, way] of [
      ['direct', ['--direct']],
      ['staged', ['--move', '300']],
    ] as const) {
      const file = join(dir, `${name}.db`);
      const result = spawnSync(
        process.execPath,
        ['--import', 'tsx', script, '--db', file, '--rows', '1000', '--owners', '50', ...way],
        { encoding: 'utf8', timeout: 60_000 },
      );
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/cpu_us_per_row\s+\d+\.\d/);
      expect(result.stdout).toMatch(/longest_append_ms\s+\d+\.\d/);
      // 1,000 rows in moves of 300: the last 100 are moved at the end, and nothing stays staged.
      const db = await openSqlite(archiveFileFor(file));
      const counted = db.prepare('SELECT count(*) AS n FROM archive').all([]) as { n: number }[];
      expect(counted[0]?.n).toBe(1000);
      expect(db.prepare('SELECT count(*) AS n FROM archive_staged').all([])).toEqual([{ n: 0 }]);
      db.close();
    }
    const wrong = spawnSync(process.execPath, ['--import', 'tsx', script, '--move', '0'], {
      encoding: 'utf8',
    });
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain('--move takes a positive whole number, not "0"');
  }, 150_000);

  it('compares the Kafka clients on a broker of its own, every record delivered by each', () => {
    const script = 'bench/src/kafka-clients.ts';
    // These two pairs take every half of both clients.
    const pairs = ['platformatic/kafkajs', 'kafkajs/platformatic'];
    const result = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        script,
        '--rate',
        '400',
        '--seconds',
        '5',
        '--rounds',
        '1',
        '--clients',
        pairs.join(','),
      ],
      { encoding: 'utf8', timeout: 150_000 },
    );
    expect(result.status, result.stderr).toBe(0);
    for (const pair of pairs) {
      const row = new RegExp(
        `^${pair}\\s+(\\d+\\.\\d)\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+\\s+(\\d+)/(\\d+)$`,
        'm',
      );
      const match = row.exec(result.stdout);
      expect(match, result.stdout).not.toBeNull();
      expect(Number(match?.[1])).toBeGreaterThan(0);
      expect(match?.[2]).toBe('2000');
      expect(match?.[3]).toBe('2000');
    }
    const wrong = spawnSync(process.execPath, ['--import', 'tsx', script, '--clients', 'kafkajs'], {
      encoding: 'utf8',
    });
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain('--clients: "kafkajs" is neither bus nor producer/consumer');
  }, 180_000);

  it('measures what an idle plain and TLS connection costs a bare Node.js server', () => {
    const script = 'bench/src/tls-floor.ts';
    const result = spawnSync(process.execPath, ['--import', 'tsx', script, '--connections', '400'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(result.status, result.stderr).toBe(0);
    const kb = (transport: string): number =>
      Number(new RegExp(`${transport}\\s+(-?[\\d.]+) KB RSS per connection`).exec(result.stdout)?.[1]);
    // A TLS session holds tens of kilobytes that a TCP socket does not; 400 connections show it clearly.
    expect(kb('tls') - kb('plain')).toBeGreaterThan(10);

    const wrong = spawnSync(process.execPath, ['--import', 'tsx', script, '--connections', '0'], {
      encoding: 'utf8',
    });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('--connections takes a whole number from 1 to 9000, not "0"');
  }, 150_000);

  it('times ltx and serialize() on the same chat message', () => {
    const script = 'bench/src/serialize.ts';
    const args = ['--import', 'tsx', script, '--count', '2000', '--rounds', '2'];
    const result = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/a 323-character chat message, 2 rounds of 2000/);
    for (const way of ['ltx toString\\(\\)', 'serialize\\(\\)']) {
      expect(result.stdout).toMatch(new RegExp(`${way}\\s+\\d+ ns \\(median; \\d+, \\d+\\)`));
    }

    const wrong = spawnSync(process.execPath, ['--import', 'tsx', script, '--rounds', 'many'], {
      encoding: 'utf8',
    });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('--rounds takes a positive whole number, not "many"');
  }, 90_000);
});
