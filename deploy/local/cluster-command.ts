// `npm run cluster`: a local Starling cluster without containers (Kafka, Redis, PostgreSQL, two edges, two
// routers, presence, archive), printed once up, stopped in order on Ctrl-C or SIGTERM.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalCluster, type LocalCluster } from './cluster.ts';

const HELP = `Usage: npm run cluster [-- --data-dir DIR] [-- --config FILE]

Starts Kafka, Redis and PostgreSQL on free loopback ports, then two edges, two routers, presence and
archive, each its own process, and prints where everything listens. Ctrl-C or SIGTERM stops the roles,
then the backends.

Edge i (0 and 1) listens on STARLING_C2S_PORT + i, STARLING_DIRECT_TLS_PORT + i and STARLING_HTTP_PORT + i
(defaults 5222, 5224 (after the c2s ports), 5280); the k-th process serves /metrics on
STARLING_METRICS_PORT + k (default 9400). A port setting of 0 gives every process ephemeral ports. Other
STARLING_* settings reach every role.

Options:
  --data-dir DIR   keep the roles' data (the generated certificate) in DIR instead of a temporary directory
  -c, --config FILE  YAML configuration file for every role (the environment wins over it)
  -h, --help       this text
`;

function table(rows: readonly (readonly string[])[]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The start-up message: every process, its pid and where it listens, and how to add a user. */
function describeCluster(cluster: LocalCluster): string {
  const rows: string[][] = [['process', 'pid', 'what', 'where']];
  for (const proc of cluster.processes) {
    const metrics = `http://${cluster.config.listen.address}:${proc.opsPort}/metrics`;
    const lines: [string, string][] = [];
    if (proc.endpoint) {
      const { host, ports } = proc.endpoint;
      lines.push(
        ['client connections (STARTTLS)', `${host}:${ports.c2s}`],
        ['client connections (TLS)', `${host}:${ports.directTls}`],
        ['WebSocket', `ws://${host}:${ports.http}/xmpp-websocket`],
      );
    }
    lines.push(['metrics and health', metrics]);
    lines.forEach(([what, where], index) =>
      rows.push(index === 0 ? [proc.name, String(proc.pid), what, where] : ['', '', what, where]),
    );
  }
  const { backends, ownBackends } = cluster;
  const pid = (value: number | undefined): string => (value === undefined ? '' : String(value));
  rows.push(
    ['kafka', pid(ownBackends?.pids.kafka), 'bootstrap brokers', backends.kafkaBrokers.join(',')],
    ['redis', pid(ownBackends?.pids.redis), 'session registry', backends.redisUrl],
    ['postgresql', pid(ownBackends?.pids.postgres), 'store', backends.postgresUrl],
  );
  return [
    `Starling local cluster for ${cluster.config.domain}; data in ${cluster.dataDir}`,
    '',
    table(rows),
    '',
    'Add a user with:',
    `  STARLING_POSTGRES_URL=${backends.postgresUrl} npm run starling -- user add alice`,
    'Stop everything with Ctrl-C.',
    '',
  ].join('\n');
}

/** Runs the command; resolves with the exit status once everything stopped. */
async function main(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string' },
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const dataDir = values['data-dir'] === undefined ? undefined : resolve(values['data-dir']);
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });

  let cluster: LocalCluster | undefined;
  let stopRequested: ((signal: string) => void) | undefined;
  const signalled = new Promise<string>((resolveSignal) => (stopRequested = resolveSignal));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (cluster === undefined) {
      // Still starting: leaving now lets the exit hooks kill whatever was started.
      process.stderr.write(`${signal} while starting: stopping\n`);
      process.exit(1);
    }
    stopRequested?.(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let up = false;
  try {
    cluster = await startLocalCluster({
      ...(dataDir === undefined ? {} : { dataDir }),
      ...(values.config === undefined ? {} : { configFile: resolve(values.config) }),
      env: { STARLING_LOG_LEVEL: process.env.STARLING_LOG_LEVEL ?? 'warn' },
      // Role logs (JSON lines) once the cluster is up; a failed start reports the output itself.
      onOutput: (name, text) => {
        if (!up) return;
        for (const line of text.split('\n')) if (line !== '') process.stderr.write(`[${name}] ${line}\n`);
      },
    });
  } catch (err) {
    process.stderr.write(`the local cluster did not start: ${(err as Error).message}\n`);
    return 1;
  }
  up = true;
  const running = cluster;
  process.stdout.write(describeCluster(running));

  const crashed = Promise.race(running.processes.map((proc) => proc.exited.then((code) => ({ proc, code }))));
  const reason = await Promise.race([signalled, crashed]);
  if (typeof reason !== 'string') {
    process.stderr.write(`${reason.proc.name} exited with ${String(reason.code)}; stopping the cluster\n`);
  } else {
    process.stderr.write(`${reason}: stopping the roles, then the backends\n`);
  }
  const codes = await running.stop();
  if (typeof reason !== 'string') return 1;
  const failed = running.processes.filter((_, index) => codes[index] !== 0);
  if (failed.length > 0) {
    process.stderr.write(`did not stop cleanly: ${failed.map((p) => p.name).join(', ')}\n`);
    return 1;
  }
  process.stderr.write('stopped\n');
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
// Handles of the clients and pools used during start-up may linger; everything of ours is stopped.
process.exit();
