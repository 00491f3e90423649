// `npm run bench:tls-floor`: what an idle connection costs a bare Node.js server that does nothing but
// hold it, over plain TCP and over TLS (the certificate the benchmarks give every server): the floor under
// Starling's memory per idle connection.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect as tlsConnect } from 'node:tls';
import { benchCertificate } from './servers/certificate.ts';

const USAGE = `Usage: npm run bench:tls-floor -- [--connections N]
  --connections N  idle connections held per transport (default 5000, at most 9000: each end takes a file)`;
const MAX_CONNECTIONS = 9_000;
/** Connections opened at once. */
const CONCURRENCY = 50;
/** Every phase is bounded. */
const PHASE_MS = 120_000;
const IDLE_MS = 3_000;

type Transport = 'plain' | 'tls';

/**
 * The server process, plain JavaScript so that nothing but the sockets grows: holds `count` connections,
 * then prints its RSS growth per connection (garbage collected) and exits. Arguments: transport, count,
 * certificate file, key file.
 */
const SERVER = `
import { readFileSync } from 'node:fs';
import { createServer as tcp } from 'node:net';
import { createServer as tls } from 'node:tls';
const [transport, countText, certFile, keyFile] = process.argv.slice(1);
const count = Number(countText);
const rssKb = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
const collect = () => { globalThis.gc(); globalThis.gc(); };
const held = [];
const hold = (socket) => {
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
  held.push(socket);
  if (held.length !== count) return;
  setTimeout(() => {
    collect();
    console.log(JSON.stringify({ kbPerConnection: (rssKb() - before) / count }));
    process.exit(0);
  }, ${IDLE_MS});
};
const server = transport === 'tls'
  ? tls({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, hold)
  : tcp(hold);
collect();
const before = rssKb();
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
setTimeout(() => {
  console.error('only ' + held.length + ' of ' + count + ' connections arrived');
  process.exit(1);
}, ${PHASE_MS}).unref();
`;

function open(transport: Transport, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket: Socket =
      transport === 'tls'
        ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
            // Something for the server to read, as a client's stream header would be.
            socket.write('x');
            resolve(socket);
          })
        : createConnection({ port, host: '127.0.0.1' }, () => {
            socket.write('x');
            resolve(socket);
          });
    socket.once('error', reject);
  });
}

/** Starts a server process, connects `count` clients to it, and returns what it reports. */
async function measure(
  transport: Transport,
  count: number,
  certFile: string,
  keyFile: string,
): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--input-type=module', '-e', SERVER, transport, String(count), certFile, keyFile],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  let waiting: (() => void) | undefined;
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts.filter((line) => line !== ''));
    waiting?.();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const next = async (): Promise<Record<string, number>> => {
    const deadline = Date.now() + PHASE_MS;
    while (lines.length === 0) {
      if (child.exitCode !== null)
        throw new Error(`the ${transport} server exited with ${String(child.exitCode)}`);
      if (Date.now() > deadline) throw new Error(`the ${transport} server did not answer in time`);
      await Promise.race([new Promise<void>((resolve) => (waiting = resolve)), exited, sleep(1_000)]);
    }
    return JSON.parse(lines.shift() ?? '{}') as Record<string, number>;
  };
  const clients: Socket[] = [];
  try {
    const { port } = await next();
    for (let i = 0; i < count; i += CONCURRENCY) {
      const batch = Math.min(CONCURRENCY, count - i);
      clients.push(...(await Promise.all(Array.from({ length: batch }, () => open(transport, port ?? 0)))));
    }
    const { kbPerConnection } = await next();
    return kbPerConnection ?? Number.NaN;
  } finally {
    for (const client of clients) client.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const count = Number(values.connections ?? 5_000);
  if (!Number.isInteger(count) || count < 1 || count > MAX_CONNECTIONS) {
    throw new Error(
      `--connections takes a whole number from 1 to ${MAX_CONNECTIONS}, not "${values.connections}"`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'starling-tls-floor-'));
  try {
    const { cert, key } = await benchCertificate(dir, 'localhost');
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    await writeFile(certFile, cert);
    await writeFile(keyFile, key, { mode: 0o600 });
    process.stdout.write(
      `Node.js ${process.version}, ${count} idle connections held by a bare server, garbage collected\n`,
    );
    for (const transport of ['plain', 'tls'] as const) {
      const kb = await measure(transport, count, certFile, keyFile);
      process.stdout.write(`  ${transport.padEnd(5)}  ${kb.toFixed(1)} KB RSS per connection\n`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
