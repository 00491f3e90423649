// @starling/core: the feature seam, typed hooks, the IQ table, the bus catalogue, configuration and logging.
export * from './config.ts';
export * from './feature.ts';
export * from './hooks.ts';
export * from './iq-table.ts';
export * from './log.ts';
export * from './role.ts';
export * from './topics.ts';
export * from './host.ts';
export * from './envelope-consumer.ts';
export * from './replay-guard.ts';
export * from './metrics.ts';
export * from './ops-server.ts';
