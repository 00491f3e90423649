// Traces across processes: Starling's tracer, spans around work, and W3C Trace Context in string maps
// (bus record headers, delivery messages). Costs next to nothing while no SDK is started: only the API
// is loaded, its tracer and propagator do nothing.
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanStatusCode,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
  trace,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';
import { ATTR_ERROR_TYPE } from './attributes.ts';

/** The instrumentation scope of every Starling span. */
export const TRACER_NAME = 'starling';

/** W3C Trace Context's key (https://www.w3.org/TR/trace-context/); `tracestate` goes with it. */
const TRACEPARENT = 'traceparent';

/** Whether an SDK runs in this process; set by startTelemetry. */
let sdkRunning = false;

/**
 * Whether spans are recorded here: an SDK was started (see startTelemetry). Without one every span is a
 * no-op and no propagator is registered, so the span helpers skip their work entirely.
 */
export function tracingActive(): boolean {
  return sdkRunning;
}

/** For startTelemetry: whether its SDK is registered now. */
export function setTracingActive(active: boolean): void {
  sdkRunning = active;
}

/** The span untraced work gets: records nothing, carries no trace context. */
const NO_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Runs `fn` as a span helper would, without the span: a synchronous throw still becomes a rejection. */
export function untraced<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (err) {
    // Passed on as thrown, as an async function would.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    return Promise.reject(err);
  }
}

/**
 * Starling's tracer. Asked for per use rather than kept: a tracer kept across one SDK's stop and the
 * next one's start would stay bound to the stopped one. Without an SDK it is the API's no-op tracer.
 */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/**
 * Writes the trace context of `ctx` (default: the active one) into `carrier` as `traceparent` and
 * `tracestate`, replacing any there, with the propagator the SDK registered (always W3C Trace Context,
 * see startTelemetry). Without an SDK, or without a valid span context, the carrier keeps what it had.
 */
export function injectTraceContext(carrier: Record<string, string>, ctx: Context = context.active()): void {
  const spanContext = trace.getSpanContext(ctx);
  if (spanContext === undefined || !trace.isSpanContextValid(spanContext)) return;
  const written: Record<string, string> = {};
  propagation.inject(ctx, written, defaultTextMapSetter);
  if (written[TRACEPARENT] === undefined) return;
  // A tracestate of an earlier hop must not stay paired with this traceparent.
  delete carrier.tracestate;
  Object.assign(carrier, written);
}

/**
 * The context `carrier` names as parent (its `traceparent` and `tracestate`), on top of `base`, which
 * defaults to the root context: a consumer must not inherit whatever happened to be active in its loop.
 * Without an SDK, `base` itself.
 */
export function extractTraceContext(
  carrier: Readonly<Record<string, string>>,
  base: Context = ROOT_CONTEXT,
): Context {
  if (carrier[TRACEPARENT] === undefined) return base;
  return propagation.extract(base, carrier, defaultTextMapGetter);
}

/** Marks `span` failed with the class of `err`; its message stays out, as it may quote a JID. */
function failSpan(span: Span, err: unknown): void {
  const type = err instanceof Error ? err.name : typeof err;
  span.setAttribute(ATTR_ERROR_TYPE, type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/**
 * Runs `fn` in a new span (child of `parent`, by default the active context) that ends when the returned
 * promise settles, failed if it rejects. `fn` runs synchronously up to its first await, so calls that
 * must keep their order still do. It also gets the span's context to inject. Without an SDK there is
 * nothing to record or inject: `fn` gets a non-recording span and `parent` (the root context if none).
 */
export function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span, spanContext: Context) => Promise<T>,
  parent?: Context,
): Promise<T> {
  if (!sdkRunning) return untraced(() => fn(NO_SPAN, parent ?? ROOT_CONTEXT));
  parent ??= context.active();
  const span = tracer().startSpan(name, options, parent);
  const active = trace.setSpan(parent, span);
  return context.with(active, async () => {
    try {
      return await fn(span, active);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}
