// Bus spans (OpenTelemetry messaging conventions): PRODUCER around a publish, CONSUMER around a handler,
// linked by the W3C trace context the publish writes into the record's headers.
import { SpanKind, type Attributes } from '@opentelemetry/api';
import {
  ATTR_MESSAGING_CONSUMER_GROUP_NAME,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_DESTINATION_PARTITION_ID,
  ATTR_MESSAGING_KAFKA_OFFSET,
  ATTR_MESSAGING_MESSAGE_BODY_SIZE,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
} from './attributes.ts';
import { extractTraceContext, inSpan, injectTraceContext, tracingActive, untraced } from './trace.ts';

/** Where a consumed record came from. Keys stay out of spans: they are bare JIDs. */
export interface ConsumedRecord {
  readonly topic: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly group: string;
  readonly partition: number;
  /** Kafka's offset of the record. */
  readonly offset?: string;
}

/**
 * Runs `send` in a PRODUCER span `send <topic>` that ends when the record is durable. `send` gets the
 * headers to write: a copy of `headers` with the span's trace context in place of any given.
 * `system` is `messaging.system`: 'kafka', or 'starling-memory' for the embedded bus; `bodySize` is
 * the record value's size in bytes, when the bus knows it anyway.
 */
export function tracePublish<T>(
  system: string,
  topic: string,
  bodySize: number | undefined,
  headers: Readonly<Record<string, string>> | undefined,
  send: (headers: Record<string, string>) => Promise<T>,
): Promise<T> {
  if (!tracingActive()) return untraced(() => send({ ...headers }));
  const attributes: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: system,
    [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
    [ATTR_MESSAGING_OPERATION_NAME]: 'send',
    [ATTR_MESSAGING_DESTINATION_NAME]: topic,
  };
  if (bodySize !== undefined) attributes[ATTR_MESSAGING_MESSAGE_BODY_SIZE] = bodySize;
  return inSpan(`send ${topic}`, { kind: SpanKind.PRODUCER, attributes }, (_span, active) => {
    const carried = { ...headers };
    injectTraceContext(carried, active);
    return send(carried);
  });
}

/**
 * Runs `handle` in a CONSUMER span `process <topic>`, a child of the trace context in the record's
 * headers (a new trace when there is none), ending when the handler settles.
 */
export function traceConsume<T>(
  system: string,
  record: ConsumedRecord,
  handle: () => Promise<T>,
): Promise<T> {
  if (!tracingActive()) return untraced(handle);
  const attributes: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: system,
    [ATTR_MESSAGING_OPERATION_TYPE]: 'process',
    [ATTR_MESSAGING_OPERATION_NAME]: 'process',
    [ATTR_MESSAGING_DESTINATION_NAME]: record.topic,
    [ATTR_MESSAGING_CONSUMER_GROUP_NAME]: record.group,
    [ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(record.partition),
  };
  if (record.offset !== undefined) attributes[ATTR_MESSAGING_KAFKA_OFFSET] = Number(record.offset);
  return inSpan(
    `process ${record.topic}`,
    { kind: SpanKind.CONSUMER, attributes },
    handle,
    extractTraceContext(record.headers),
  );
}
