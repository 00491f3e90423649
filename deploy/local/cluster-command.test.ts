// `npm run cluster`: starts the whole cluster on the configured ports, prints it, serves users on both
// edges, and on SIGTERM stops every role and backend and exits 0.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '../../test/harness/client.ts';
import { processRunning as running } from './process-end.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMMAND = fileURLToPath(new URL('./cluster-command.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/starling.js', import.meta.url));
/** Two edges' c2s, direct TLS and HTTP ports, then six metrics ports. */
const PORTS = 12;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The lowest port the kernel hands out for outgoing connections and port-0 listeners. A range chosen above
 * it could be taken by another test's connection between the check and the cluster's listen.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 21_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** The first of `count` consecutive ports that are free right now, below the ephemeral range. */
async function freeRange(count: number): Promise<number> {
  const span = ephemeralLow() - count - 20_000;
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * span);
    const free = await Promise.all(Array.from({ length: count }, (_, i) => portFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

const children: { kill(signal: NodeJS.Signals): boolean }[] = [];

afterAll(() => {
  // After a failure: the roles and backends the command started are ended by their watchdogs.
  for (const child of children) child.kill('SIGKILL');
});

describe('npm run cluster', () => {
  it('runs two edges on consecutive ports for users of each, and stops everything on SIGTERM', async () => {
    const base = await freeRange(PORTS);
    const child = spawn(process.execPath, ['--import', 'tsx', COMMAND], {
      cwd: ROOT,
      env: {
        ...process.env,
        STARLING_C2S_PORT: String(base),
        STARLING_DIRECT_TLS_PORT: String(base + 2),
        STARLING_HTTP_PORT: String(base + 4),
        STARLING_METRICS_PORT: String(base + 6),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner in time:\n${stdout}${stderr}`)), 150_000);
      child.stdout.on('data', () => {
        if (stdout.includes('Stop everything with Ctrl-C.')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((code) => reject(new Error(`exited with ${String(code)}:\n${stdout}${stderr}`)));
    });

    const row = (name: string): string[] =>
      stdout
        .split('\n')
        .find((line) => line.startsWith(`${name} `))
        ?.trim()
        .split(/\s{2,}/) ?? [];
    expect(stdout).toContain(`edge-1`);
    expect(stdout).toContain(`127.0.0.1:${base}\n`);
    expect(stdout).toContain(`127.0.0.1:${base + 1}\n`);
    expect(stdout).toContain(`127.0.0.1:${base + 3}\n`);
    expect(stdout).toContain(`ws://127.0.0.1:${base + 5}/xmpp-websocket`);
    const postgresUrl = row('postgresql')[3] ?? '';
    expect(postgresUrl).toMatch(/^postgres:\/\//);
    const pids = ['kafka', 'redis', 'postgresql'].map((name) => Number(row(name)[1]));
    for (const pid of pids) expect(running(pid)).toBe(true);
    const dataDir = /data in (\S+)/.exec(stdout)?.[1] ?? '';
    expect(existsSync(dataDir)).toBe(true);
    const metrics = await fetch(`http://127.0.0.1:${base + 11}/metrics`);
    expect(metrics.status).toBe(200);

    // The command the banner suggests.
    for (const name of ['alice', 'bob']) {
      const added = spawnSync(process.execPath, [BIN, 'user', 'add', name, '--password', `${name}-secret`], {
        cwd: ROOT,
        env: { ...process.env, STARLING_POSTGRES_URL: postgresUrl },
        encoding: 'utf8',
      });
      expect(added.status, added.stderr).toBe(0);
    }
    const edge = (i: number) => ({
      host: '127.0.0.1',
      domain: 'localhost',
      ports: { c2s: base + i, directTls: base + 2 + i, http: base + 4 + i },
    });
    const alice = await connect(edge(0), { username: 'alice', password: 'alice-secret', resource: 'a' });
    const bob = await connect(edge(1), {
      username: 'bob',
      password: 'bob-secret',
      resource: 'b',
      transport: 'direct-tls',
    });
    await bob.send('<presence/>');
    await bob.expect((el) => el.name === 'presence' && el.attrs.from === 'bob@localhost/b', 15_000);
    await alice.send("<message to='bob@localhost' type='chat'><body>hello from edge 1</body></message>");
    const message = await bob.expect(
      (el) => el.name === 'message' && el.getChildText('body') === 'hello from edge 1',
      15_000,
    );
    expect(message.attrs.from).toBe('alice@localhost/a');
    await alice.stop();
    await bob.stop();

    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still running'), 90_000))),
    ]);
    clearTimeout(timer);
    expect(code, `${stdout}${stderr}`).toBe(0);
    expect(stderr).toContain('stopped');
    for (const pid of pids) expect(running(pid), `pid ${pid}`).toBe(false);
    expect(existsSync(dataDir)).toBe(false);
  }, 300_000);
});
