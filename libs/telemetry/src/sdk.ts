// The OpenTelemetry SDK of a process: started from the standard OTEL_* environment variables, traces only.
import { context, propagation, trace } from '@opentelemetry/api';
import type { NodeSDK, NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import { setTracingActive } from './trace.ts';

/** What a process says about itself when it starts telemetry. */
export interface TelemetryOptions {
  /** `service.name` of this process's spans (e.g. 'starling-router'), unless OTEL_SERVICE_NAME names one. */
  readonly serviceName: string;
  /** `service.instance.id`, e.g. the node id. */
  readonly instanceId?: string;
  /** Span processors to use instead of the exporters OTEL_* would set up; tracing is then on. For tests. */
  readonly spanProcessors?: NodeSDKConfiguration['spanProcessors'];
}

/** Telemetry as started. */
export interface Telemetry {
  /** Whether this process records and exports spans. */
  readonly tracing: boolean;
  /**
   * Flushes the spans still buffered and stops the SDK (the last close of the process does). Rejects
   * when they could not be exported within a few seconds; the SDK is stopped all the same.
   */
  close(): Promise<void>;
}

const OFF: Telemetry = { tracing: false, close: () => Promise.resolve() };

function setting(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

/**
 * Whether the environment asks for traces: an exporter named in OTEL_TRACES_EXPORTER (other than
 * 'none'), or an OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
 * and OTEL_SDK_DISABLED not 'true'. Without any of these the SDK is not even loaded.
 */
export function tracingConfigured(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  if (setting(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return false;
  const exporters = setting(env, 'OTEL_TRACES_EXPORTER');
  if (exporters !== undefined) return exporters.split(',').some((name) => name.trim() !== 'none');
  return (
    setting(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined ||
    setting(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined
  );
}

/** The SDK of this process, shared by every start (an embedded server and a test may both start one). */
interface Running {
  users: number;
  readonly started: Promise<NodeSDK>;
}

let running: Running | undefined;
/** The last shutdown; a new SDK registers only after the old one unregistered. */
let stopped: Promise<void> = Promise.resolve();

async function startSdk(options: TelemetryOptions): Promise<NodeSDK> {
  await stopped;
  // Loaded only when tracing is on: the SDK and its exporters take a while to import, and every process
  // that imports this package (the CLI too) would pay for them.
  const [{ NodeSDK }, { W3CTraceContextPropagator }, { defaultResource, resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/core'),
      import('@opentelemetry/resources'),
    ]);
  const attributes: Record<string, string> = { 'service.name': options.serviceName };
  if (options.instanceId !== undefined) attributes['service.instance.id'] = options.instanceId;
  const sdk = new NodeSDK({
    // The SDK merges OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over these.
    resource: defaultResource().merge(resourceFromAttributes(attributes)),
    // Bus headers and delivery messages carry W3C Trace Context whatever OTEL_PROPAGATORS says: every
    // Starling process must read what every other one writes.
    textMapPropagator: new W3CTraceContextPropagator(),
    // Metrics are prom-client's (/metrics) and logs pino's (JSON lines); OTEL_* would otherwise add
    // OTLP exporters for both.
    metricReaders: [],
    logRecordProcessors: [],
    ...(options.spanProcessors === undefined ? {} : { spanProcessors: options.spanProcessors }),
  });
  sdk.start();
  return sdk;
}

/** Longest a close waits for the exporter (a collector that is down would hold it 30 s per batch). */
const FLUSH_TIMEOUT_MS = 5_000;

async function stopSdk(sdk: Promise<NodeSDK>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const bound = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`traces not flushed within ${FLUSH_TIMEOUT_MS} ms`)),
        FLUSH_TIMEOUT_MS,
      );
    });
    await Promise.race([(await sdk).shutdown(), bound]);
  } finally {
    clearTimeout(timer);
    // The SDK leaves its registrations behind; a later start (or the no-op API) needs them gone.
    trace.disable();
    propagation.disable();
    context.disable();
  }
}

/**
 * Starts the OpenTelemetry SDK when the environment configures tracing (see {@link tracingConfigured}):
 * spans go to the exporter OTEL_TRACES_EXPORTER names (default OTLP, OTEL_EXPORTER_OTLP_* settings),
 * sampled as OTEL_TRACES_SAMPLER says, with the W3C Trace Context propagator. Otherwise nothing is
 * loaded and the API's no-op tracer stays in place. Starts in one process share one SDK, stopped when
 * the last of them closes.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  if (options.spanProcessors === undefined && !tracingConfigured()) return OFF;
  const current = (running ??= { users: 0, started: startSdk(options) });
  current.users++;
  try {
    await current.started;
  } catch (err) {
    current.users--;
    if (running === current) running = undefined;
    throw err;
  }
  setTracingActive(true);
  let closing: Promise<void> | undefined;
  return {
    tracing: true,
    close: () => {
      closing ??= (async () => {
        if (--current.users > 0) return;
        if (running === current) running = undefined;
        setTracingActive(false);
        const stopping = stopSdk(current.started);
        stopped = stopping.catch(() => undefined);
        await stopping;
      })();
      return closing;
    },
  };
}
