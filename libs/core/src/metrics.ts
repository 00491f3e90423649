// The metric catalogue: every metric Starling exports, by one name each (xmpp_ prefix, base units, _total
// for counters, never a JID as a label).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per process; `/metrics` serves it. */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'xmpp_process_' });

export const connections = new Gauge({
  name: 'xmpp_connections',
  help: 'Open client connections, by transport.',
  labelNames: ['transport'] as const,
  registers: [metricsRegistry],
});

export const hibernatedConnections = new Gauge({
  name: 'xmpp_connections_hibernated',
  help: 'Client connections idle long enough to have let go of their XML parser (limits.hibernateSeconds), at the last check.',
  registers: [metricsRegistry],
});

export const sessions = new Gauge({
  name: 'xmpp_sessions',
  help: 'Bound client sessions on this edge.',
  registers: [metricsRegistry],
});

export const stanzasIn = new Counter({
  name: 'xmpp_stanzas_received_total',
  help: 'Stanzas received from clients and published to the bus, by kind.',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

export const stanzasOut = new Counter({
  name: 'xmpp_stanzas_delivered_total',
  help: 'Stanzas written to client streams, by kind.',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

export const authentications = new Counter({
  name: 'xmpp_authentications_total',
  help: 'SASL authentication attempts, by result (success, failure, blocked).',
  labelNames: ['result'] as const,
  registers: [metricsRegistry],
});

export const streamErrors = new Counter({
  name: 'xmpp_stream_errors_total',
  help: 'Streams ended with a stream error, by condition (limits show as policy-violation).',
  labelNames: ['condition'] as const,
  registers: [metricsRegistry],
});

export const busPublishSeconds = new Histogram({
  name: 'xmpp_bus_publish_seconds',
  help: 'Time from publish to the bus confirming the record, by topic.',
  labelNames: ['topic'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [metricsRegistry],
});

export const routed = new Counter({
  name: 'xmpp_routed_total',
  help: 'Stanzas routed by the router and presence roles, by outcome (delivered, offline, error, dropped).',
  labelNames: ['outcome'] as const,
  registers: [metricsRegistry],
});

export const sweptSessions = new Counter({
  name: 'xmpp_swept_sessions_total',
  help: 'Sessions ended because the edge holding them stopped renewing its lease.',
  registers: [metricsRegistry],
});

export const archiveStagedRows = new Gauge({
  name: 'xmpp_archive_staged_rows',
  help: 'Archived messages written and not yet moved into the indexed archive (embedded store); a count that keeps growing means moves fail.',
  registers: [metricsRegistry],
});

export const archiveHeapUsed = new Gauge({
  name: 'xmpp_archive_heap_used_bytes',
  help: 'Heap the embedded archive thread uses, read after each move of staged rows.',
  registers: [metricsRegistry],
});

export const archiveHeapLimit = new Gauge({
  name: 'xmpp_archive_heap_limit_bytes',
  help: 'Heap at which the embedded archive thread would stop (it follows limits.stanzaBytes); read after each move.',
  registers: [metricsRegistry],
});

export const archiveMoveFailures = new Counter({
  name: 'xmpp_archive_move_failures_total',
  help: 'Moves of staged archive rows into the indexed archive that failed (embedded store); the rows stay staged for the next move.',
  registers: [metricsRegistry],
});

export const busBackpressure = new Gauge({
  name: 'xmpp_bus_backpressure',
  help: 'Whether the embedded bus holds back what the edge publishes (1) because a consumer group fell too far behind; connections then stop being read until it caught up.',
  registers: [metricsRegistry],
});

export const busBackpressureEvents = new Counter({
  name: 'xmpp_bus_backpressure_total',
  help: 'Times the embedded bus started holding back what the edge publishes, by the topic and consumer group that was behind.',
  labelNames: ['topic', 'group'] as const,
  registers: [metricsRegistry],
});
