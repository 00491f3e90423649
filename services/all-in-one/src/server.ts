// The embedded shape: edge, router, presence and archive in one process, wired with in-process adapters and SQLite.
import { join } from 'node:path';
import { MemoryStanzaBus, MemorySessionRegistry, LocalDelivery } from '@starling/adapters';
import { archiveHeapMb, openSqliteStore } from '@starling/store';
import {
  archiveMoveFailures,
  archiveHeapLimit,
  archiveHeapUsed,
  archiveStagedRows,
  busBackpressure,
  busBackpressureEvents,
  type Config,
  type Feature,
  type Logger,
  type RoleDeps,
  type RoleHandle,
} from '@starling/core';
import { enabledFeatures } from '@starling/features';
import { startEdge, type EdgeHandle } from '@starling/edge';
import { startRouter } from '@starling/router';
import { startPresence } from '@starling/presence';
// Until the workspace links @starling/archive, by path.
import { startArchive } from '@starling/archive';
import { startTelemetry, type Telemetry } from '@starling/telemetry';
import { loadTlsCredentials, type TlsCredentials } from './certificate.ts';

export interface EmbeddedServer {
  readonly ports: EdgeHandle['ports'];
  readonly tls: TlsCredentials;
  readonly databaseFile: string;
  /** Drains the edge (clients get `system-shutdown`), then stops router, presence, archive and the backends. */
  close(): Promise<void>;
}

export function databaseFile(config: Config): string {
  return join(config.dataDir, 'starling.db');
}

/**
 * Starts every role in this process. Fails (and releases what it opened) if any part cannot start.
 * `features` defaults to those the configuration enables.
 */
export async function startEmbedded(
  config: Config,
  log: Logger,
  features: readonly Feature[] = enabledFeatures(config),
): Promise<EmbeddedServer> {
  const tls = await loadTlsCredentials(config);
  const file = databaseFile(config);
  const store = await openSqliteStore(file, {
    archive: {
      maxHeapMb: archiveHeapMb(config.limits.stanzaBytes),
      observer: {
        staged: (rows) => archiveStagedRows.set(rows),
        heap: (used, limit) => {
          archiveHeapUsed.set(used);
          archiveHeapLimit.set(limit);
        },
        moveFailed: (error) => {
          archiveMoveFailures.inc();
          log.error({ error }, 'archive: moving staged rows failed; they stay staged for the next move');
        },
      },
    },
  });
  let pressureLogged = 0;
  const bus = new MemoryStanzaBus({
    onError: (err, record) => log.error({ err, topic: record.topic }, 'bus handler failed'),
    onPressure: (behind) => {
      busBackpressure.set(behind === undefined ? 0 : 1);
      if (behind === undefined) return;
      busBackpressureEvents.labels(behind.topic, behind.group).inc();
      // An overloaded server may hold and go on many times a second: one line a minute tells the operator.
      if (Date.now() - pressureLogged < 60_000) return;
      pressureLogged = Date.now();
      log.warn(
        behind,
        'bus: a consumer group fell behind; connections are read more slowly until it caught up',
      );
    },
  });
  const registry = new MemorySessionRegistry();
  const delivery = new LocalDelivery();
  // The bus is in this process: every reader of an envelope is this release. The archive role shares the
  // store, so archive writes skip the bus.
  const deps: RoleDeps = {
    config,
    bus,
    registry,
    store,
    delivery,
    log,
    features,
    compactEnvelopes: true,
    archiveInProcess: true,
  };

  const roles: RoleHandle[] = [];
  let edge: EdgeHandle | undefined;
  let telemetry: Telemetry | undefined;
  const release = async (): Promise<void> => {
    // The edge goes first so its session ends are on the bus; closing the bus lets presence handle them.
    await edge?.close();
    await bus.close();
    for (const role of roles.reverse()) await role.close();
    await delivery.close();
    await registry.close();
    await store.close();
    await telemetry?.close().catch((err: unknown) => log.warn({ err }, 'flushing traces failed'));
  };
  try {
    telemetry = await startTelemetry({ serviceName: 'starling' });
    roles.push(await startPresence(deps));
    roles.push(await startArchive(deps));
    roles.push(await startRouter(deps));
    edge = await startEdge({
      ...deps,
      bus: bus.ingress(),
      edgeId: 'edge-0',
      tls: { cert: tls.cert, key: tls.key },
      metricsOnHttp: true,
    });
    return { ports: edge.ports, tls, databaseFile: file, close: release };
  } catch (err) {
    await release();
    throw err;
  }
}
