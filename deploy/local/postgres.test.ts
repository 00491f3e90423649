// Local infrastructure: the throwaway PostgreSQL server starts private and durable, and never outlives its tests.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { waitFor } from '@starling/ports/contracts';
import { afterAll, describe, expect, it } from 'vitest';
import { findPostgresBinaries, startPostgres, type RunningPostgres } from './postgres.ts';
import { processRunning } from './process-end.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MODULE = fileURLToPath(new URL('./postgres.ts', import.meta.url));

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

async function setting(client: pg.Client, name: string): Promise<string> {
  const { rows } = await client.query<{ value: string }>('select current_setting($1) as value', [name]);
  return rows[0]?.value ?? '';
}

interface Orphan {
  readonly pid: number;
  readonly port: number;
  readonly dir: string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts a server from a separate Node process that then ends with `ending` without calling stop():
 * what happens when a test worker crashes or is killed.
 */
async function startInChild(ending: string): Promise<Orphan> {
  const script = `
    import pg from 'pg';
    import { startPostgres } from ${JSON.stringify(MODULE)};
    const server = await startPostgres();
    const client = new pg.Client(server.url);
    await client.connect();
    const dir = (await client.query('show unix_socket_directories')).rows[0].unix_socket_directories;
    await client.end();
    console.log(JSON.stringify({ pid: server.pid, port: Number(new URL(server.url).port), dir }));
    ${ending}
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const line = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const json = output.split('\n').find((l) => l.startsWith('{'));
      if (json !== undefined) resolve(json);
    });
    void exit.then(() => reject(new Error(`child exited before reporting its server:\n${output}`)));
    setTimeout(
      () => reject(new Error(`child did not report its server in time:\n${output}`)),
      60_000,
    ).unref();
  });
  try {
    const started = JSON.parse(await line) as { pid: number; port: number; dir: string };
    return { ...started, exit, kill: (signal) => child.kill(signal) };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

async function expectGone(orphan: Orphan): Promise<void> {
  await waitFor(() => !processRunning(orphan.pid), 10_000, `postmaster ${orphan.pid} to die`);
  expect(await refusesConnections(orphan.port)).toBe(true);
  // Removed right after the postmaster ended, by the exit handler or, after SIGKILL, by its watchdog.
  await waitFor(() => !existsSync(orphan.dir), 5_000, `${orphan.dir} to be removed`);
}

describe('startPostgres', () => {
  const started: RunningPostgres[] = [];

  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  });

  it('serves a starling database on loopback with fsync on, and stop() ends it and removes its files', async () => {
    const server = await startPostgres();
    started.push(server);
    const url = new URL(server.url);
    expect(url.hostname).toBe('127.0.0.1');
    expect(url.pathname).toBe('/starling');

    const client = new pg.Client(server.url);
    await client.connect();
    let dir: string;
    try {
      expect(await setting(client, 'fsync')).toBe('on');
      expect(await setting(client, 'synchronous_commit')).toBe('on');
      expect(await setting(client, 'listen_addresses')).toBe('127.0.0.1');
      expect((await client.query('select current_database() as db')).rows).toEqual([{ db: 'starling' }]);
      dir = await setting(client, 'unix_socket_directories');
      expect(await setting(client, 'data_directory')).toBe(join(dir, 'data'));
      // The PID handed out is the postmaster's own, not a wrapper's.
      const pidFile = await readFile(join(dir, 'data', 'postmaster.pid'), 'utf8');
      expect(Number(pidFile.split('\n')[0])).toBe(server.pid);
    } finally {
      await client.end();
    }

    await server.stop();
    expect(processRunning(server.pid)).toBe(false);
    expect(await refusesConnections(Number(url.port))).toBe(true);
    expect(existsSync(dir)).toBe(false);
    await server.stop();
  });

  it('runs two servers side by side, each on its own port and directory', async () => {
    const [one, two] = await Promise.all([startPostgres(), startPostgres()]);
    started.push(one, two);
    expect(new URL(one.url).port).not.toBe(new URL(two.url).port);
    for (const server of [one, two]) {
      const client = new pg.Client(server.url);
      await client.connect();
      await client.query('create table mine (x int)');
      await client.end();
    }
  });

  it('kills the server when the process that started it exits without stopping it', async () => {
    const orphan = await startInChild('process.exit(3);');
    expect((await orphan.exit).code).toBe(3);
    await expectGone(orphan);
  });

  it('kills the server when the process that started it is terminated by a signal', async () => {
    const orphan = await startInChild('setInterval(() => undefined, 1000);');
    orphan.kill('SIGTERM');
    expect((await orphan.exit).signal).toBe('SIGTERM');
    await expectGone(orphan);
  });

  it('kills the server when the process that started it is killed with SIGKILL, where no handler runs', async () => {
    const orphan = await startInChild('setInterval(() => undefined, 1000);');
    orphan.kill('SIGKILL');
    expect((await orphan.exit).signal).toBe('SIGKILL');
    await expectGone(orphan);
  });
});

describe('findPostgresBinaries', () => {
  it('prefers the newest Debian major version, then looks on PATH', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'starling-pgbin-'));
    try {
      async function fake(bin: string, names: readonly string[]): Promise<void> {
        await mkdir(bin, { recursive: true });
        for (const name of names) {
          await writeFile(join(bin, name), '#!/bin/sh\n');
          await chmod(join(bin, name), 0o755);
        }
      }
      const debian = join(dir, 'debian');
      await fake(join(debian, '9.6', 'bin'), ['initdb', 'postgres']);
      await fake(join(debian, '15', 'bin'), ['initdb', 'postgres']);
      await fake(join(debian, '16', 'bin'), ['initdb']);
      await fake(join(dir, 'path'), ['initdb', 'postgres']);

      expect(await findPostgresBinaries({ PATH: join(dir, 'path') }, debian)).toEqual({
        initdb: join(debian, '15', 'bin', 'initdb'),
        postgres: join(debian, '15', 'bin', 'postgres'),
      });
      expect(await findPostgresBinaries({ PATH: join(dir, 'path') }, join(dir, 'none'))).toEqual({
        initdb: join(dir, 'path', 'initdb'),
        postgres: join(dir, 'path', 'postgres'),
      });
      expect(
        await findPostgresBinaries({ PATH: join(debian, '16', 'bin') }, join(dir, 'none')),
      ).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
