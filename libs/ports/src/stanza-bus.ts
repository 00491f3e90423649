// StanzaBus port: durable, keyed, ordered topics between roles (Kafka in a cluster, in-process when embedded).

/** One record on a topic. `value` is the serialized envelope; headers carry trace context and timestamps. */
export interface BusRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Handles one record. Records of one key reach one handler at a time, in publish order; a record counts
 * as consumed (its offset committed) only after the returned promise resolves. A rejection is reported
 * through the bus's error callback and the record then counts as consumed: hosts answer their own failures.
 */
export type BusHandler = (record: BusRecord) => Promise<void>;

export interface BusSubscription {
  /** Stops consuming; resolves after in-flight handlers finished. */
  close(): Promise<void>;
}

export interface StanzaBus {
  /**
   * Appends a record. Resolves only when the record is durable (Kafka: acknowledged by all in-sync
   * replicas), which is when the edge may count a client stanza as handled. The headers given arrive
   * as given, except that an adapter writes the publishing span's W3C trace context (`traceparent`,
   * `tracestate`) over theirs, and may add an ingress time (`starling-ingress-ms`) where none is given.
   */
  publish(
    topic: string,
    key: string,
    value: string,
    headers?: Readonly<Record<string, string>>,
  ): Promise<void>;
  /** Joins consumer group `group` on `topic`; each record reaches one member of each group. */
  subscribe(topic: string, group: string, handler: BusHandler): Promise<BusSubscription>;
  /** Flushes and releases everything; pending publishes settle first. */
  close(): Promise<void>;
}
