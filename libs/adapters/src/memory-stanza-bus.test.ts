// In-process StanzaBus: the port contract, plus closing, buffer bounds and asynchrony of the embedded bus.
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { BusRecord } from '@starling/ports';
import { describeStanzaBusContract, waitFor } from '@starling/ports/contracts';
import { inSpan } from '@starling/telemetry';
import { recordSpans, type SpanRecorder } from '@starling/telemetry/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStanzaBus, type MemoryStanzaBusOptions, type Pressure } from './memory-stanza-bus.ts';

describeStanzaBusContract('MemoryStanzaBus', ({ onError }) =>
  Promise.resolve(new MemoryStanzaBus({ onError })),
);

describeStanzaBusContract('MemoryStanzaBus ingress view', ({ onError }) =>
  Promise.resolve(new MemoryStanzaBus({ onError, highWater: 8 }).ingress()),
);

function collect(into: BusRecord[]): (record: BusRecord) => Promise<void> {
  return (record) => {
    into.push(record);
    return Promise.resolve();
  };
}

/**
 * A bus with one group, 'slow' on topic 't', whose handlers wait until `release()`; `got` holds the values
 * they were given and `pressure` what onPressure was told.
 */
async function gatedGroup(options: MemoryStanzaBusOptions) {
  const pressure: (Pressure | undefined)[] = [];
  const bus = new MemoryStanzaBus({ ...options, onPressure: (behind) => pressure.push(behind) });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const got: string[] = [];
  await bus.subscribe('t', 'slow', async (record) => {
    got.push(record.value);
    await gate;
  });
  return { bus, pressure, got, release };
}

describe('MemoryStanzaBus', () => {
  it('rejects publish and subscribe after close', async () => {
    const bus = new MemoryStanzaBus();
    await bus.close();
    await expect(bus.publish('t', 'k', 'v')).rejects.toThrow(/closed/);
    await expect(bus.subscribe('t', 'g', () => Promise.resolve())).rejects.toThrow(/closed/);
    await bus.close();
  });

  it('never runs a handler inside the call stack of publish', async () => {
    const bus = new MemoryStanzaBus();
    let publishing = false;
    const seenDuringPublish: boolean[] = [];
    await bus.subscribe('t', 'g', () => {
      seenDuringPublish.push(publishing);
      return Promise.resolve();
    });
    publishing = true;
    const published = bus.publish('t', 'k', 'v');
    publishing = false;
    await published;
    await waitFor(() => seenDuringPublish.length === 1);
    expect(seenDuringPublish).toEqual([false]);
    await bus.close();
  });

  it('bounds the records held for a topic nobody consumes yet', async () => {
    const bus = new MemoryStanzaBus({ maxBuffered: 3 });
    for (const value of ['1', '2', '3']) await bus.publish('t', 'k', value);
    await expect(bus.publish('t', 'k', '4')).rejects.toThrow(/no consumer/);
    await bus.publish('other', 'k', 'fine');
    const got: BusRecord[] = [];
    await bus.subscribe('t', 'g', collect(got));
    await bus.publish('t', 'k', '5');
    await waitFor(() => got.length === 4);
    expect(got.map((r) => r.value)).toEqual(['1', '2', '3', '5']);
    await bus.close();
  });

  it('bounds the records held for a group whose members all left', async () => {
    const bus = new MemoryStanzaBus({ maxBuffered: 2 });
    const sub = await bus.subscribe('t', 'g', () => Promise.resolve());
    await sub.close();
    await bus.publish('t', 'k', '1');
    await bus.publish('t', 'k', '2');
    await expect(bus.publish('t', 'k', '3')).rejects.toThrow(/no consumer/);
    const got: BusRecord[] = [];
    await bus.subscribe('t', 'g', collect(got));
    await waitFor(() => got.length === 2);
    expect(got.map((r) => r.value)).toEqual(['1', '2']);
    await bus.close();
  });

  it('gives early records to the first group only, later records to every group', async () => {
    const bus = new MemoryStanzaBus();
    await bus.publish('t', 'k', 'early');
    const first: BusRecord[] = [];
    const second: BusRecord[] = [];
    await bus.subscribe('t', 'first', collect(first));
    await bus.subscribe('t', 'second', collect(second));
    await bus.publish('t', 'k', 'late');
    await waitFor(() => first.length === 2 && second.length === 1);
    expect(first.map((r) => r.value)).toEqual(['early', 'late']);
    expect(second.map((r) => r.value)).toEqual(['late']);
    await bus.close();
  });

  it('keeps its own copy of the headers', async () => {
    const bus = new MemoryStanzaBus();
    const got: BusRecord[] = [];
    await bus.subscribe('t', 'g', collect(got));
    const headers: Record<string, string> = { traceparent: 'a' };
    await bus.publish('t', 'k', 'v', headers);
    headers.traceparent = 'b';
    await waitFor(() => got.length === 1);
    expect(got[0]?.headers).toEqual({ traceparent: 'a' });
    await bus.close();
  });

  it('keeps going when the error callback itself throws', async () => {
    const bus = new MemoryStanzaBus({
      onError: () => {
        throw new Error('logger broke');
      },
    });
    const got: string[] = [];
    await bus.subscribe('t', 'g', (record) => {
      if (record.value === 'bad') return Promise.reject(new Error('bad record'));
      got.push(record.value);
      return Promise.resolve();
    });
    for (const value of ['bad', 'good']) await bus.publish('t', 'k', value);
    await waitFor(() => got.length === 1);
    expect(got).toEqual(['good']);
    await bus.close();
  });

  it('processes a long backlog of one key in order', async () => {
    const bus = new MemoryStanzaBus({ partitions: 1 });
    const count = 5_000;
    for (let i = 0; i < count; i++) await bus.publish('t', 'k', String(i));
    const got: number[] = [];
    await bus.subscribe('t', 'g', (record) => {
      got.push(Number(record.value));
      return Promise.resolve();
    });
    await waitFor(() => got.length === count);
    expect(got).toEqual([...Array(count).keys()]);
    await bus.close();
  });

  it('runs up to 64 keys of one partition at once, and a busy key holds back only its own records', async () => {
    const bus = new MemoryStanzaBus({ partitions: 1 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    await bus.subscribe('t', 'g', async (record) => {
      started.push(`${record.key}:${record.value}`);
      await gate;
    });
    // k0 three times: its second and third records wait for the first, in order; k1's does not.
    await bus.publish('t', 'k0', 'a');
    await bus.publish('t', 'k0', 'b');
    await bus.publish('t', 'k1', 'a');
    await bus.publish('t', 'k0', 'c');
    await waitFor(() => started.length === 2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['k0:a', 'k1:a']);
    release();
    await waitFor(() => started.length === 4);
    expect(started).toEqual(['k0:a', 'k1:a', 'k0:b', 'k0:c']);

    let releaseMany!: () => void;
    const many = new Promise<void>((resolve) => (releaseMany = resolve));
    const running = new Set<string>();
    let most = 0;
    let done = 0;
    await bus.subscribe('u', 'g', async (record) => {
      running.add(record.key);
      most = Math.max(most, running.size);
      await many;
      running.delete(record.key);
      done++;
    });
    for (let i = 0; i < 100; i++) await bus.publish('u', `k${String(i)}`, 'x');
    await waitFor(() => running.size === 64);
    await new Promise((resolve) => setImmediate(resolve));
    expect(running.size).toBe(64);
    releaseMany();
    await waitFor(() => done === 100);
    expect(most).toBe(64);
    await bus.close();
  });

  it('closes only after its groups handled what was queued, and what their handlers published meanwhile', async () => {
    const bus = new MemoryStanzaBus({ partitions: 4 });
    const handled: number[] = [];
    await bus.subscribe('in', 'router', async (record) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      await bus.publish('out', record.key, record.value);
    });
    await bus.subscribe('out', 'archive', (record) => {
      handled.push(Number(record.value));
      return Promise.resolve();
    });
    for (let i = 0; i < 300; i++) await bus.publish('in', `k${String(i % 10)}`, String(i));
    await bus.close();
    expect(handled.sort((a, b) => a - b)).toEqual([...Array(300).keys()]);
    await expect(bus.publish('in', 'k0', 'late')).rejects.toThrow('stanza bus closed');
  });

  it('stops draining at its bound when handlers never run dry', async () => {
    const bus = new MemoryStanzaBus({ drainTimeoutMs: 200 });
    let handled = 0;
    // Each record publishes the next: the topic is never empty.
    await bus.subscribe('ping', 'g', async (record) => {
      handled++;
      await new Promise((resolve) => setTimeout(resolve, 1));
      await bus.publish('ping', record.key, record.value).catch(() => undefined);
    });
    await bus.publish('ping', 'k', 'x');
    const started = Date.now();
    await bus.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(handled).toBeGreaterThan(10);
  });

  it("holds ingress publishes while a group is behind, in order, and never the handlers' own", async () => {
    const { bus, pressure, got, release } = await gatedGroup({ highWater: 4 });
    const ingress = bus.ingress();
    // One key: the first record runs and holds the others back, so they stay queued.
    for (const value of ['1', '2', '3', '4', '5']) await bus.publish('t', 'k', value);
    await waitFor(() => got.length === 1);
    expect(pressure).toEqual([{ topic: 't', group: 'slow', queued: 4, queuedChars: 4 }]);

    let settled = 0;
    const held = ['i1', 'i2', 'i3'].map((value) => ingress.publish('t', 'k', value).then(() => settled++));
    // The group's handlers publish on as ever: waiting for room only they can make would stop them.
    await bus.publish('t', 'other', 'from-a-handler');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(0);

    release();
    await Promise.all(held);
    // Held until the group was down to half of highWater (2 queued), then appended in order: two of them
    // bring it to highWater again, so the third waits for the next time it is down to half.
    expect(pressure).toEqual([
      { topic: 't', group: 'slow', queued: 4, queuedChars: 4 },
      undefined,
      { topic: 't', group: 'slow', queued: 4, queuedChars: 6 },
      undefined,
    ]);
    await waitFor(() => got.length === 9);
    expect(got.filter((value) => value !== 'from-a-handler')).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      'i1',
      'i2',
      'i3',
    ]);
    await bus.close();
  });

  it('holds ingress publishes while a group has highWaterChars characters queued, in few records', async () => {
    const { bus, pressure, got, release } = await gatedGroup({ highWater: 100, highWaterChars: 2_000 });
    const large = (tag: string): string => tag + 'x'.repeat(799);
    // The first runs and holds the key; the next three wait: 2,400 characters in three records.
    for (const tag of ['a', 'b', 'c', 'd']) await bus.publish('t', 'k', large(tag));
    await waitFor(() => got.length === 1);
    expect(pressure).toEqual([{ topic: 't', group: 'slow', queued: 3, queuedChars: 2_400 }]);

    let settled = false;
    const held = bus
      .ingress()
      .publish('t', 'k', large('i'))
      .then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);

    // Down to 800 characters (half of 2,000 or less) once two more were taken: ingress goes on, in order.
    release();
    await held;
    expect(pressure.at(-1)).toBeUndefined();
    await waitFor(() => got.length === 5);
    expect(got.map((value) => value[0])).toEqual(['a', 'b', 'c', 'd', 'i']);
    await bus.close();
  });

  it('lets ingress go on when the group that was behind loses its members', async () => {
    const bus = new MemoryStanzaBus({ highWater: 2 });
    const sub = await bus.subscribe('t', 'slow', () => new Promise<void>(() => undefined));
    await bus.subscribe('t', 'fast', () => Promise.resolve());
    for (const value of ['1', '2', '3']) await bus.publish('t', 'k', value);
    let settled = false;
    const held = bus
      .ingress()
      .publish('t', 'k', 'in')
      .then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    // Leaving waits for the handler that never settles; the group stops holding ingress at once.
    void sub.close();
    await held;
    expect(settled).toBe(true);
  });

  it('refuses held ingress publishes once close() gave up waiting for the groups', async () => {
    const bus = new MemoryStanzaBus({ highWater: 2, drainTimeoutMs: 100 });
    let handled = 0;
    await bus.subscribe('t', 'stuck', () => {
      handled++;
      return new Promise<void>(() => undefined);
    });
    for (const value of ['1', '2', '3']) await bus.publish('t', 'k', value);
    const held = bus.ingress().publish('t', 'k', 'in');
    const closing = bus.close();
    await expect(held).rejects.toThrow('stanza bus closed');
    expect(handled).toBe(1);
    void closing;
  });

  it('refuses nonsensical options', () => {
    expect(() => new MemoryStanzaBus({ highWater: 0 })).toThrow(RangeError);
    expect(() => new MemoryStanzaBus({ highWaterChars: -1 })).toThrow(RangeError);
    expect(() => new MemoryStanzaBus({ partitions: 0 })).toThrow(RangeError);
    expect(() => new MemoryStanzaBus({ maxBuffered: 1.5 })).toThrow(RangeError);
    expect(() => new MemoryStanzaBus({ drainTimeoutMs: 0 })).toThrow(RangeError);
  });
});

describe('MemoryStanzaBus traces', () => {
  let recorder: SpanRecorder;

  beforeAll(async () => {
    recorder = await recordSpans();
  });

  afterAll(async () => {
    await recorder.stop();
  });

  beforeEach(() => recorder.reset());

  it('continues the publishing trace in the handler, through the record headers', async () => {
    const bus = new MemoryStanzaBus();
    const got: { record: BusRecord; spanId: string | undefined }[] = [];
    await bus.subscribe('xmpp.stanzas', 'router', (record) => {
      got.push({ record, spanId: trace.getActiveSpan()?.spanContext().spanId });
      return Promise.resolve();
    });
    await inSpan('ingress', {}, () => bus.publish('xmpp.stanzas', 'juliet@example.com', 'v', { a: 'kept' }));
    await waitFor(async () => (await recorder.spans()).length === 3, 5_000, 'three spans');
    await bus.close();

    const ingress = await recorder.one('ingress');
    const send = await recorder.one('send xmpp.stanzas');
    const process = await recorder.one('process xmpp.stanzas');
    const traceId = ingress.spanContext().traceId;
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.spanContext().traceId).toBe(traceId);
    expect(send.parentSpanContext?.spanId).toBe(ingress.spanContext().spanId);
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.spanContext().traceId).toBe(traceId);
    expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(process.attributes).toEqual({
      'messaging.system': 'starling-memory',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': 'xmpp.stanzas',
      'messaging.consumer.group.name': 'router',
      'messaging.destination.partition.id': expect.stringMatching(/^\d+$/) as unknown,
    });
    // The key is a bare JID: personal data stays out of spans.
    expect(JSON.stringify([send.attributes, process.attributes])).not.toContain('@');

    expect(got).toHaveLength(1);
    expect(got[0]?.spanId).toBe(process.spanContext().spanId);
    expect(got[0]?.record.headers).toEqual({
      a: 'kept',
      traceparent: `00-${traceId}-${send.spanContext().spanId}-01`,
    });
  });

  it('starts a trace at a publish outside any span, and fails the span of a failing handler', async () => {
    const bus = new MemoryStanzaBus({ onError: () => undefined });
    await bus.subscribe('t', 'g', () => Promise.reject(new Error('boom')));
    await bus.publish('t', 'k', 'v');
    await waitFor(
      async () => (await recorder.spans()).some((s) => s.name === 'process t'),
      5_000,
      'the span',
    );
    await bus.close();
    const send = await recorder.one('send t');
    const process = await recorder.one('process t');
    expect(send.parentSpanContext).toBeUndefined();
    expect(process.spanContext().traceId).toBe(send.spanContext().traceId);
    expect(process.status.code).toBe(SpanStatusCode.ERROR);
    expect(process.attributes['error.type']).toBe('Error');
  });
});
