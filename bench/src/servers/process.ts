// Starting and stopping server processes: wait until c2s answers a stream header, stop by PID.
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export function onceExited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Resolves once `host:c2sPort` answers a stream header with stream features. */
export async function waitForStream(
  target: { host: string; c2sPort: number; domain: string },
  exited: Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  const state = { gone: false };
  void exited.then(() => (state.gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (state.gone) throw new Error(`the server exited before listening on ${String(target.c2sPort)}`);
    if (await answersStream(target)) return;
    await sleep(250);
  }
  throw new Error(
    `the server did not answer on ${target.host}:${String(target.c2sPort)} within ${String(timeoutMs)} ms`,
  );
}

function answersStream(target: { host: string; c2sPort: number; domain: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.c2sPort });
    let text = '';
    const timer = setTimeout(() => finish(false), 5000);
    function finish(ok: boolean): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    }
    socket.on('error', () => finish(false));
    socket.on('connect', () =>
      socket.write(
        `<?xml version='1.0'?><stream:stream to='${target.domain}' xmlns='jabber:client' ` +
          `xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`,
      ),
    );
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('</stream:features>')) finish(true);
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(
  child: ChildProcess,
  exited: Promise<unknown>,
  graceMs = 15_000,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
