// The embedded Starling server as a process of its own, optionally pinned to one CPU, for benchmarks.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processTree } from '../proc.ts';
import { onceExited, stopProcess, waitForStream } from './process.ts';
import type { RunningServer, ServerOptions } from './server.ts';

const BIN = new URL('../../../bin/starling.js', import.meta.url).pathname;

/**
 * The embedded server; `archive: false` runs it with `archive.enabled: false`, to compare it with servers
 * run without MAM.
 */
export async function startStarling(
  options: ServerOptions & { readonly archive?: boolean },
): Promise<RunningServer> {
  await mkdir(options.dir, { recursive: true });
  const certFile = join(options.dir, 'cert.pem');
  const keyFile = join(options.dir, 'key.pem');
  await writeFile(certFile, options.cert);
  await writeFile(keyFile, options.key, { mode: 0o600 });
  const configFile = join(options.dir, 'starling.json');
  // YAML is a superset of JSON: the configuration file is written as JSON.
  const config = {
    domain: options.domain,
    listen: {
      address: options.host,
      c2sPort: options.c2sPort,
      directTlsPort: options.directTlsPort,
      httpPort: options.httpPort,
    },
    dataDir: join(options.dir, 'data'),
    tls: { cert: certFile, key: keyFile, required: false },
    registration: 'open',
    // The load generator connects from one address.
    limits: { connectionsPerAddress: 60_000 },
    archive: { enabled: options.archive ?? true },
    log: { level: 'warn' },
  };
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const profile =
    options.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`];
  const command = [process.execPath, ...profile, BIN, 'serve', '--config', configFile];
  const pinned = options.cpu === undefined ? command : ['taskset', '-c', String(options.cpu), ...command];
  const child = spawn(pinned[0]!, pinned.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = onceExited(child);
  await waitForStream(options, exited, 60_000);
  const rootPid = child.pid!;
  return {
    name: options.archive !== false ? 'Starling (embedded)' : 'Starling (embedded, no archive)',
    endpoints: [{ c2sPort: options.c2sPort, directTlsPort: options.directTlsPort }],
    components: [{ name: 'starling', pids: () => processTree(rootPid) }],
    stop: () => stopProcess(child, exited),
  };
}
