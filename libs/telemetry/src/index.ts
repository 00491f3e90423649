// @starling/telemetry: OpenTelemetry traces that follow a stanza from edge ingress through the bus and
// Delivery to edge egress. Roles use the tracer and the propagation helpers; composition roots start the SDK.
export * from './attributes.ts';
export * from './bus.ts';
export * from './sdk.ts';
export * from './trace.ts';
