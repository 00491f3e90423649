// The cluster shape of Starling for benchmarks: real Kafka, Redis and PostgreSQL started fresh, then two
// edges, two routers, presence and archive, each its own process (deploy/local/cluster.ts), all sharing
// this machine; clients alternate over the two edges.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalCluster } from '../../../deploy/local/cluster.ts';
import { processTree, type Component } from '../proc.ts';
import { openBackendCounters } from './backend-counters.ts';
import type { RunningServer, ServerOptions } from './server.ts';

/** The metrics port base: the k-th role serves /metrics on it plus k (six roles). */
const METRICS_PORT = 26400;

/**
 * `options.cpu` does not apply: the roles and the backends share the machine. The backends start fresh each
 * run (their data stays in temporary directories of their own and goes at stop), so the accounts do too.
 */
export async function startCluster(options: ServerOptions): Promise<RunningServer> {
  const started = performance.now();
  await mkdir(options.dir, { recursive: true });
  // Accounts live in PostgreSQL, which is new each run: the benchmark must register its users again.
  await rm(join(options.dir, 'registered-users'), { force: true });
  const certFile = join(options.dir, 'cert.pem');
  const keyFile = join(options.dir, 'key.pem');
  await writeFile(certFile, options.cert);
  await writeFile(keyFile, options.key, { mode: 0o600 });
  const dataDir = join(options.dir, 'data');
  await mkdir(dataDir, { recursive: true });
  const configFile = join(options.dir, 'starling.json');
  // YAML is a superset of JSON: the configuration file is written as JSON. Ports, data directory, log level
  // and backends come from the environment, which wins over the file.
  const config = {
    domain: options.domain,
    listen: { address: options.host },
    tls: { cert: certFile, key: keyFile, required: false },
    registration: 'open',
    // The load generator connects from one address.
    limits: { connectionsPerAddress: 60_000 },
    log: { level: 'warn' },
  };
  await writeFile(configFile, JSON.stringify(config, null, 2));

  // Loaded here, not at the top: it brings Kafka and test clients the other server kinds do not need.
  const { startLocalCluster } = await import('../../../deploy/local/cluster.ts');
  let up = false;
  const cluster: LocalCluster = await startLocalCluster({
    configFile,
    // The broker as deployed, not the quick-starting one of the tests: its CPU is part of the figures.
    kafkaJvm: 'server',
    dataDir,
    env: {
      // Bases: edge i gets the client ports plus i, the k-th role the metrics port plus k.
      STARLING_C2S_PORT: String(options.c2sPort),
      STARLING_DIRECT_TLS_PORT: String(options.directTlsPort),
      STARLING_HTTP_PORT: String(options.httpPort),
      STARLING_METRICS_PORT: String(METRICS_PORT),
      STARLING_LOG_LEVEL: 'warn',
    },
    ...(options.profileDir === undefined
      ? {}
      : { nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] }),
    // Role logs (warnings and worse) once up; a failed start reports the output itself.
    onOutput: (name, text) => {
      if (!up) return;
      for (const line of text.split('\n')) if (line !== '') process.stderr.write(`[${name}] ${line}\n`);
    },
  });
  up = true;
  let stopping = false;
  for (const proc of cluster.processes) {
    void proc.exited.then((code) => {
      if (!stopping)
        process.stderr.write(`cluster: ${proc.name} exited with ${String(code)} during the run\n`);
    });
  }
  const backends = cluster.ownBackends;
  if (backends === undefined) {
    await cluster.stop();
    throw new Error('the cluster did not start backends of its own');
  }
  process.stderr.write(`cluster up in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);

  const tree = (pid: number) => (): number[] => processTree(pid);
  const components: Component[] = [
    ...cluster.processes.map((proc) => ({ name: proc.name, pids: tree(proc.pid) })),
    { name: 'kafka', pids: tree(backends.pids.kafka) },
    { name: 'redis', pids: tree(backends.pids.redis) },
    { name: 'postgres', pids: tree(backends.pids.postgres) },
  ];
  const counters = await openBackendCounters(backends).catch(async (err: unknown) => {
    await cluster.stop();
    throw err;
  });
  // Where the edges said they listen: edge i on the client port bases plus i.
  const endpoints = cluster.edges.map((edge) => ({
    c2sPort: edge.ports.c2s,
    directTlsPort: edge.ports.directTls,
  }));
  return {
    name: 'Starling (cluster: 2 edges, 2 routers, presence, archive)',
    endpoints,
    components,
    counters: () => counters.read(),
    async stop() {
      stopping = true;
      await counters.close();
      const codes = await cluster.stop();
      const failed = cluster.processes.filter((_, index) => codes[index] !== 0);
      if (failed.length > 0) {
        process.stderr.write(`cluster: did not stop cleanly: ${failed.map((p) => p.name).join(', ')}\n`);
      }
    },
  };
}
