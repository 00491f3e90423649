// Local infrastructure: what a process starts in a group of its own ends with it, even when it is killed
// with SIGKILL and no exit handler runs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@starling/ports/contracts';
import { afterAll, describe, expect, it } from 'vitest';
import { endWithThisProcess, processRunning as running } from './process-end.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MODULE = fileURLToPath(new URL('./process-end.ts', import.meta.url));

const leftovers: number[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const pid of leftovers) {
    try {
      if (running(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'starling-process-end-'));
  dirs.push(dir);
  return dir;
}

/**
 * A Node process that starts `command` (sh) in a group of its own, watched with `options`, reports its PID,
 * and waits to be killed.
 */
async function parentOf(command: string, options: string): Promise<{ pid: number; kill(): void }> {
  const script = `
    import { spawn } from 'node:child_process';
    import { endWithThisProcess } from ${JSON.stringify(MODULE)};
    const child = spawn('sh', ['-c', ${JSON.stringify(command)}], { stdio: 'ignore', detached: true });
    endWithThisProcess(child, ${options});
    console.log(JSON.stringify({ pid: child.pid }));
    setInterval(() => undefined, 1000);
  `;
  const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  parent.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  parent.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => parent.once('exit', () => resolve()));
  try {
    await waitFor(() => output.includes('}'), 30_000, `the parent to report its child:\n${output}`);
    const { pid } = JSON.parse(output.slice(0, output.indexOf('}') + 1)) as { pid: number };
    leftovers.push(pid);
    return {
      pid,
      kill: () => {
        parent.kill('SIGKILL');
        void exited;
      },
    };
  } catch (err) {
    parent.kill('SIGKILL');
    throw err;
  }
}

describe('endWithThisProcess', () => {
  it('kills the watched process and removes its directory when the process that started it is SIGKILLed', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'data'), 'x');
    const parent = await parentOf('sleep 300', JSON.stringify({ dir }));
    expect(running(parent.pid)).toBe(true);
    parent.kill();
    await waitFor(() => !running(parent.pid), 10_000, `pid ${parent.pid} to be killed`);
    await waitFor(() => !existsSync(dir), 10_000, `${dir} to be removed`);
  });

  it('sends the given signal first, and SIGKILL once the grace ran out', async () => {
    const marks = await tempDir();
    const mark = join(marks, 'term');
    // Notes the SIGTERM and carries on: only SIGKILL ends it.
    const stubborn = `trap 'echo term > ${mark}' TERM; while :; do sleep 0.1; done`;
    const parent = await parentOf(stubborn, JSON.stringify({ signal: 'SIGTERM', graceMs: 500 }));
    parent.kill();
    await waitFor(() => existsSync(mark), 10_000, 'the watched process to get SIGTERM');
    await waitFor(() => !running(parent.pid), 10_000, `pid ${parent.pid} to be killed after the grace`);
  });

  it('goes away itself once the watched process exited, so a reused PID is never signalled', async () => {
    const child = spawn('sleep', ['0.2'], { stdio: 'ignore', detached: true });
    const watchdog = endWithThisProcess(child);
    expect(watchdog?.pid).toBeTypeOf('number');
    const ended = new Promise<NodeJS.Signals | null>((resolve) =>
      watchdog?.once('exit', (_code, signal) => resolve(signal)),
    );
    watchdog?.ref();
    expect(await ended).toBe('SIGKILL');
    expect(child.exitCode).toBe(0);
  });
});
