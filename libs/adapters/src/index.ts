// @starling/adapters: every adapter behind the ports, embedded (in-process, in-memory) and cluster (Kafka, Redis, gRPC).
export * from './grpc-delivery.ts';
export {
  KafkaStanzaBus,
  type KafkaBusLog,
  type KafkaSasl,
  type KafkaStanzaBusOptions,
} from './kafka-stanza-bus.ts';
export * from './local-delivery.ts';
export * from './memory-session-registry.ts';
export * from './memory-stanza-bus.ts';
export * from './redis-session-registry.ts';
