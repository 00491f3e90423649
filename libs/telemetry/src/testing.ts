// Test support: records this process's spans in memory, through the same SDK start as a role process.
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTelemetry } from './sdk.ts';

/** Spans recorded since {@link recordSpans} or the last `reset`. */
export interface SpanRecorder {
  /** Ended spans, in the order they ended. */
  spans(): Promise<readonly ReadableSpan[]>;
  /** The ended span named `name`; rejects unless there is exactly one. */
  one(name: string): Promise<ReadableSpan>;
  reset(): void;
  /** Stops the SDK and drops its global registrations, so later tests run on the no-op API again. */
  stop(): Promise<void>;
}

/** Starts the SDK with an in-memory exporter; call `stop` when the suite ends. */
export async function recordSpans(): Promise<SpanRecorder> {
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor(exporter);
  const telemetry = await startTelemetry({ serviceName: 'starling-test', spanProcessors: [processor] });
  // An ended span is exported once the resource's detected attributes are in.
  const spans = async (): Promise<readonly ReadableSpan[]> => {
    await processor.forceFlush();
    return exporter.getFinishedSpans();
  };
  return {
    spans,
    one: async (name) => {
      const all = await spans();
      const found = all.filter((span) => span.name === name);
      const [span] = found;
      if (span === undefined || found.length > 1) {
        const names = all.map((s) => s.name).join(', ');
        throw new Error(`expected one span named ${name}, got ${found.length} among: ${names}`);
      }
      return span;
    },
    reset: () => exporter.reset(),
    stop: () => telemetry.close(),
  };
}
