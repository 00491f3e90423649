// Starting and stopping the SDK: off without configuration, shared between starts, gone after the last close.
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, expect, it, vi } from 'vitest';
import { startTelemetry } from './sdk.ts';
import { tracer } from './trace.ts';

afterEach(() => {
  vi.unstubAllEnvs();
});

function recording(): boolean {
  const span = tracer().startSpan('probe');
  span.end();
  return span.isRecording() || trace.isSpanContextValid(span.spanContext());
}

it('stays on the no-op API when tracing is not configured', async () => {
  vi.stubEnv('OTEL_TRACES_EXPORTER', 'none');
  vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', 'http://127.0.0.1:4318');
  const telemetry = await startTelemetry({ serviceName: 'starling-test' });
  expect(telemetry.tracing).toBe(false);
  expect(recording()).toBe(false);
  await telemetry.close();
});

it('shares one SDK between starts and stops it with the last close', async () => {
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor(exporter);
  const first = await startTelemetry({
    serviceName: 'starling-edge',
    instanceId: 'edge-7',
    spanProcessors: [processor],
  });
  const second = await startTelemetry({ serviceName: 'starling-router', spanProcessors: [] });
  expect(first.tracing && second.tracing).toBe(true);
  tracer().startSpan('recorded').end();
  await first.close();
  await first.close();
  expect(recording()).toBe(true);
  // The exporter forgets its spans when the SDK shuts it down.
  await processor.forceFlush();
  const [span] = exporter.getFinishedSpans();
  expect(span?.name).toBe('recorded');
  expect(span?.resource.attributes).toMatchObject({
    'service.name': 'starling-edge',
    'service.instance.id': 'edge-7',
  });
  await second.close();
  expect(recording()).toBe(false);

  // A later start registers afresh.
  const again = await startTelemetry({
    serviceName: 'starling-test',
    spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
  });
  expect(recording()).toBe(true);
  await again.close();
  expect(recording()).toBe(false);
});
