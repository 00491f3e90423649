// Edge ingress: a stanza's trace starts at its publish, and its record carries the ingress time.
import { SpanKind, trace } from '@opentelemetry/api';
import { MemoryStanzaBus } from '@starling/adapters';
import { TOPIC_STANZAS } from '@starling/core';
import type { BusRecord } from '@starling/ports';
import { waitFor } from '@starling/ports/contracts';
import { INGRESS_HEADER } from '@starling/telemetry';
import { recordSpans, type SpanRecorder } from '@starling/telemetry/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { IngressBudget } from './ingress-budget.ts';
import { PublishWindow } from './publish-window.ts';

let recorder: SpanRecorder;

beforeAll(async () => {
  recorder = await recordSpans();
});

afterAll(async () => {
  await recorder.stop();
});

it('starts the trace at ingress and stamps the ingress time, which a republish keeps', async () => {
  const bus = new MemoryStanzaBus();
  const got: { record: BusRecord; traceId: string | undefined }[] = [];
  // A role that passes the record on, as the router does with presence.
  await bus.subscribe(TOPIC_STANZAS, 'router', (record) =>
    bus.publish('xmpp.next', record.key, record.value, record.headers),
  );
  await bus.subscribe('xmpp.next', 'next', (record) => {
    got.push({ record, traceId: trace.getActiveSpan()?.spanContext().traceId });
    return Promise.resolve();
  });
  const pressure: number[] = [];
  const budget = new IngressBudget(10);
  const window = new PublishWindow(bus, budget, (n) => pressure.push(n));
  const before = Date.now();
  await window.publish(TOPIC_STANZAS, 'juliet@example.com', '{"t":"stanza"}', 'message');
  await window.drain();
  await waitFor(() => got.length === 1, 5_000, 'the republished record');
  await bus.close();
  expect(pressure).toEqual([1, 0]);
  expect(budget.unconfirmed).toBe(0);

  const ingress = await recorder.one('xmpp.ingress message');
  expect(ingress.kind).toBe(SpanKind.SERVER);
  expect(ingress.parentSpanContext).toBeUndefined();
  const traceId = ingress.spanContext().traceId;
  const send = await recorder.one(`send ${TOPIC_STANZAS}`);
  expect(send.parentSpanContext?.spanId).toBe(ingress.spanContext().spanId);
  const consume = await recorder.one(`process ${TOPIC_STANZAS}`);
  const resend = await recorder.one('send xmpp.next');
  expect(resend.parentSpanContext?.spanId).toBe(consume.spanContext().spanId);
  expect(got[0]?.traceId).toBe(traceId);

  const headers = got[0]?.record.headers ?? {};
  expect(headers['traceparent']).toBe(`00-${traceId}-${resend.spanContext().spanId}-01`);
  const ingressTime = Number(headers[INGRESS_HEADER]);
  expect(ingressTime).toBeGreaterThanOrEqual(before);
  expect(ingressTime).toBeLessThanOrEqual(Date.now());
});
