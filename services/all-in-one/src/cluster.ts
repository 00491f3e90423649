// The cluster shape: one role per process on Kafka, Redis, PostgreSQL and gRPC, all chosen here from
// configuration (the composition root; features and role hosts only see the ports).
import { hostname } from 'node:os';
import { GrpcDelivery, KafkaStanzaBus, RedisSessionRegistry, type RedisTarget } from '@starling/adapters';
import { startArchive } from '@starling/archive';
import {
  ConfigError,
  startOpsServer,
  type Config,
  type Logger,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { startEdge, type EdgeHandle } from '@starling/edge';
import { enabledFeatures } from '@starling/features';
import { startPresence } from '@starling/presence';
import { startRouter } from '@starling/router';
import { openPostgresStore } from '@starling/store';
import { startTelemetry } from '@starling/telemetry';
import { loadTlsCredentials } from './certificate.ts';

export const CLUSTER_ROLES = ['edge', 'router', 'presence', 'archive'] as const;
export type ClusterRole = (typeof CLUSTER_ROLES)[number];

export interface ClusterProcess {
  readonly role: ClusterRole;
  readonly nodeId: string;
  /** The internal endpoint (/metrics, /healthz, /readyz). */
  readonly opsPort: number;
  /** Client ports, for an edge. */
  readonly ports?: EdgeHandle['ports'];
  /** Stops taking work (readiness goes false), drains the role, then releases every backend. */
  close(): Promise<void>;
}

function hostPort(text: string, setting: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new ConfigError(`${setting}: "${text}" is not host:port`);
  }
  return { host: text.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

function redisTarget(config: Config): RedisTarget {
  const { redisUrl, redisClusterNodes } = config.cluster;
  if (redisClusterNodes.length > 0) {
    return { cluster: redisClusterNodes.map((node) => hostPort(node, 'cluster.redisClusterNodes')) };
  }
  if (redisUrl === undefined) {
    throw new ConfigError(
      'cluster.redisUrl (STARLING_REDIS_URL) or cluster.redisClusterNodes (STARLING_REDIS_CLUSTER_NODES) is required',
    );
  }
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    throw new ConfigError(`cluster.redisUrl: "${redisUrl}" is not a URL like redis://host:6379`);
  }
  if (url.protocol !== 'redis:')
    throw new ConfigError(`cluster.redisUrl: use redis://host:port, not ${url.protocol}`);
  return {
    host: url.hostname,
    port: url.port === '' ? 6379 : Number(url.port),
    ...(url.password === '' ? {} : { options: { password: decodeURIComponent(url.password) } }),
  };
}

/** Checks the backend settings a cluster role needs, naming each missing one. */
export function checkClusterConfig(config: Config): void {
  const missing: string[] = [];
  if (config.cluster.kafkaBrokers.length === 0) missing.push('cluster.kafkaBrokers (STARLING_KAFKA_BROKERS)');
  if (config.cluster.postgresUrl === undefined) missing.push('cluster.postgresUrl (STARLING_POSTGRES_URL)');
  if (config.cluster.redisUrl === undefined && config.cluster.redisClusterNodes.length === 0) {
    missing.push('cluster.redisUrl (STARLING_REDIS_URL) or cluster.redisClusterNodes');
  }
  if (missing.length > 0) throw new ConfigError(`a cluster role needs:\n  ${missing.join('\n  ')}`);
  for (const broker of config.cluster.kafkaBrokers) hostPort(broker, 'cluster.kafkaBrokers');
  redisTarget(config);
}

/** Starts `role` on the cluster backends; fails (releasing what it opened) if any cannot be reached. */
export async function startClusterRole(
  role: ClusterRole,
  config: Config,
  log: Logger,
): Promise<ClusterProcess> {
  checkClusterConfig(config);
  const nodeId = config.cluster.nodeId ?? hostname();
  const roleLog = log.child({ nodeId });
  const opened: { close(): Promise<void> }[] = [];
  const release = async (): Promise<void> => {
    for (const resource of opened.reverse()) {
      await resource.close().catch((err: unknown) => roleLog.error({ err }, 'closing a backend failed'));
    }
  };
  let ready = false;
  try {
    // First, so the backends' spans have somewhere to go; closed last, after the role's final spans.
    const telemetry = await startTelemetry({ serviceName: `starling-${role}`, instanceId: nodeId });
    opened.push(telemetry);
    const ops = await startOpsServer(config.listen.address, config.cluster.metricsPort, () => ready);
    opened.push(ops);
    const store = await openPostgresStore(config.cluster.postgresUrl ?? '');
    opened.push(store);
    const registry = await RedisSessionRegistry.connect(redisTarget(config));
    opened.push(registry);
    const bus = await KafkaStanzaBus.create({
      brokers: config.cluster.kafkaBrokers,
      clientId: `starling-${role}-${nodeId}`,
      partitions: config.cluster.kafkaPartitions,
      onError: (err, record) => roleLog.error({ err, topic: record.topic }, 'bus handler failed'),
      log: (level, message, fields) => roleLog[level](fields, message),
    });
    opened.push(bus);
    const advertise = config.cluster.deliveryAdvertise;
    const delivery = new GrpcDelivery({
      listenAddress: config.cluster.deliveryListen,
      ...(advertise === undefined ? {} : { advertiseHost: advertise }),
      resolve: async (edgeId) => (await registry.lease(edgeId))?.address,
      log: roleLog,
    });
    opened.push(delivery);
    const deps: RoleDeps = {
      config,
      bus,
      registry,
      store,
      delivery,
      log: roleLog,
      features: enabledFeatures(config),
    };

    let handle: RoleHandle;
    let ports: EdgeHandle['ports'] | undefined;
    switch (role) {
      case 'edge': {
        const tls = await loadTlsCredentials(config);
        const edge = await startEdge({ ...deps, edgeId: nodeId, tls: { cert: tls.cert, key: tls.key } });
        ports = edge.ports;
        handle = edge;
        break;
      }
      case 'router':
        handle = await startRouter(deps);
        break;
      case 'presence':
        handle = await startPresence(deps);
        break;
      case 'archive':
        handle = await startArchive(deps);
        break;
    }
    opened.push(handle);
    ready = true;
    roleLog.info({ role, opsPort: ops.port, ports, tracing: telemetry.tracing }, 'cluster role started');
    return {
      role,
      nodeId,
      opsPort: ops.port,
      ...(ports === undefined ? {} : { ports }),
      close: async () => {
        ready = false;
        await release();
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
