// Span and header names: OpenTelemetry semantic conventions (messaging, RPC) plus Starling's own.
// Copied as strings rather than imported: the messaging and RPC names live in the conventions' unstable
// ("incubating") entry point, which its authors ask users to copy.

export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_DESTINATION_PARTITION_ID = 'messaging.destination.partition.id';
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name';
export const ATTR_MESSAGING_KAFKA_OFFSET = 'messaging.kafka.offset';
export const ATTR_MESSAGING_MESSAGE_BODY_SIZE = 'messaging.message.body.size';

export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';

/** The class of a failure (its name), never its message: messages may quote JIDs. */
export const ATTR_ERROR_TYPE = 'error.type';

/** The edge a delivery goes to (a node id, not personal data). */
export const ATTR_EDGE_ID = 'starling.edge.id';
/** What a delivery carries: 'stanza' or 'close'. */
export const ATTR_DELIVERY_PAYLOAD = 'starling.delivery.payload';
/** Whether the edge took a delivery. */
export const ATTR_DELIVERED = 'starling.delivery.delivered';

/**
 * Bus record header: when the stanza entered Starling, in milliseconds since the epoch (decimal). The
 * edge sets it at ingress; a record published without one gets its publish time from the Kafka bus.
 * Roles that republish a record pass its headers on, so it survives every hop.
 */
export const INGRESS_HEADER = 'starling-ingress-ms';
