// Trace context in string maps, spans around work, and when the SDK starts.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type SpanContext } from '@opentelemetry/api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tracingConfigured } from './sdk.ts';
import { recordSpans, type SpanRecorder } from './testing.ts';
import { traceConsume, tracePublish } from './bus.ts';
import { extractTraceContext, inSpan, injectTraceContext, tracer, tracingActive } from './trace.ts';

const REMOTE: SpanContext = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: 1,
  isRemote: true,
};

describe('tracingConfigured', () => {
  it('is off without OTEL_* settings, so the SDK is not even loaded', () => {
    expect(tracingConfigured({})).toBe(false);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: '' })).toBe(false);
  });

  it('is on with an exporter or an OTLP endpoint', () => {
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'console,zipkin' })).toBe(true);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(
      true,
    );
  });

  it("is off when the exporter is 'none' or the SDK is disabled", () => {
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(
      tracingConfigured({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
    ).toBe(false);
    expect(tracingConfigured({ OTEL_SDK_DISABLED: 'TRUE', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(false);
  });
});

describe('without an SDK', () => {
  it('neither injects nor extracts, and leaves the carrier as it was', async () => {
    const carrier = {
      traceparent: `00-${REMOTE.traceId}-${REMOTE.spanId}-01`,
      tracestate: 'a=1',
      other: 'x',
    };
    const parent = extractTraceContext(carrier);
    expect(parent).toBe(ROOT_CONTEXT);
    await inSpan('hop', {}, (_span, active) => Promise.resolve(injectTraceContext(carrier, active)), parent);
    injectTraceContext(carrier, trace.setSpanContext(ROOT_CONTEXT, REMOTE));
    expect(carrier).toEqual({
      traceparent: `00-${REMOTE.traceId}-${REMOTE.spanId}-01`,
      tracestate: 'a=1',
      other: 'x',
    });
  });

  it('runs the work of a span helper at once, as is, a synchronous throw turned into a rejection', async () => {
    expect(tracingActive()).toBe(false);
    const order: string[] = [];
    const done = inSpan('work', {}, (span) => {
      order.push('started');
      expect(span.isRecording()).toBe(false);
      return Promise.resolve(42);
    });
    order.push('returned');
    expect(order).toEqual(['started', 'returned']);
    await expect(done).resolves.toBe(42);
    const boom = new Error('boom');
    await expect(
      inSpan('work', {}, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    await expect(
      traceConsume('starling-memory', { topic: 't', headers: {}, group: 'g', partition: 0 }, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    // The headers handed to a publish are the caller's, copied.
    const given = { a: '1' };
    const sent = await tracePublish('starling-memory', 't', undefined, given, (headers) =>
      Promise.resolve(headers),
    );
    expect(sent).toEqual(given);
    expect(sent).not.toBe(given);
  });
});

describe('with the SDK', () => {
  let recorder: SpanRecorder;

  beforeAll(async () => {
    recorder = await recordSpans();
    expect(tracingActive()).toBe(true);
  });

  afterAll(async () => {
    await recorder.stop();
    expect(tracingActive()).toBe(false);
  });

  beforeEach(() => recorder.reset());

  it('round-trips a span context through a string map', () => {
    const span = tracer().startSpan('work');
    const carrier: Record<string, string> = { tracestate: 'stale=1', other: 'kept' };
    injectTraceContext(carrier, trace.setSpan(ROOT_CONTEXT, span));
    span.end();
    expect(carrier['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // The stale tracestate of an earlier hop is gone; unrelated entries stay.
    expect(carrier).toEqual({ traceparent: carrier['traceparent'], other: 'kept' });
    const extracted = trace.getSpanContext(extractTraceContext(carrier));
    expect(extracted).toEqual({ ...span.spanContext(), isRemote: true });
  });

  it('keeps a tracestate', () => {
    const carrier = { traceparent: `00-${REMOTE.traceId}-${REMOTE.spanId}-01`, tracestate: 'vendor=abc' };
    const out: Record<string, string> = {};
    injectTraceContext(out, extractTraceContext(carrier));
    expect(out).toEqual(carrier);
  });

  it('extracts onto the root context, not what happens to be active', () => {
    const active = tracer().startSpan('unrelated');
    const extracted = context.with(trace.setSpan(ROOT_CONTEXT, active), () => extractTraceContext({}));
    active.end();
    expect(trace.getSpan(extracted)).toBeUndefined();
  });

  it('runs work in a child span that ends when the work settles, failed without the message', async () => {
    const carrier: Record<string, string> = {};
    const parent = extractTraceContext({ traceparent: `00-${REMOTE.traceId}-${REMOTE.spanId}-01` });
    await inSpan(
      'ok',
      { kind: SpanKind.CONSUMER },
      () => Promise.resolve(injectTraceContext(carrier)),
      parent,
    );
    await expect(
      inSpan('failing', {}, () => Promise.reject(new TypeError('juliet@example.com is gone'))),
    ).rejects.toThrow(TypeError);

    const ok = await recorder.one('ok');
    expect(ok.kind).toBe(SpanKind.CONSUMER);
    expect(ok.spanContext().traceId).toBe(REMOTE.traceId);
    expect(ok.parentSpanContext?.spanId).toBe(REMOTE.spanId);
    expect(carrier['traceparent']).toBe(`00-${REMOTE.traceId}-${ok.spanContext().spanId}-01`);
    const failing = await recorder.one('failing');
    expect(failing.status).toEqual({ code: SpanStatusCode.ERROR, message: 'TypeError' });
    expect(failing.attributes).toEqual({ 'error.type': 'TypeError' });
    expect(failing.events).toEqual([]);
  });
});
