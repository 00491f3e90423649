// Delivery over gRPC: the port contract over real loopback streams, plus streams, deadlines and reconnects.
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { SpanKind, trace } from '@opentelemetry/api';
import type { DeliveryPayload, DeliveryTarget } from '@starling/ports';
import { deferred, describeDeliveryContract, unique, waitFor } from '@starling/ports/contracts';
import { inSpan } from '@starling/telemetry';
import { recordSpans, type SpanRecorder } from '@starling/telemetry/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GrpcDelivery, type GrpcDeliveryOptions } from './grpc-delivery.ts';

/** The instance's own address once it listens: edge and caller in one, as the contract suite wants. */
describeDeliveryContract('GrpcDelivery', () => {
  const delivery: GrpcDelivery = new GrpcDelivery({
    resolve: () => {
      try {
        return Promise.resolve(delivery.address());
      } catch {
        return Promise.resolve(undefined);
      }
    },
  });
  return Promise.resolve(delivery);
});

describe('GrpcDelivery', () => {
  let open: { close(): Promise<void> | void }[] = [];

  afterEach(async () => {
    const pending = open.reverse();
    open = [];
    for (const item of pending) await item.close();
  });

  function track<T extends { close(): Promise<void> | void }>(item: T): T {
    open.push(item);
    return item;
  }

  function delivery(options: Partial<GrpcDeliveryOptions> = {}): GrpcDelivery {
    return track(new GrpcDelivery({ resolve: () => Promise.resolve(undefined), ...options }));
  }

  /** A caller whose resolver maps edge ids to the current address of the given edge instances. */
  function router(edges: () => Record<string, GrpcDelivery>, options: Partial<GrpcDeliveryOptions> = {}) {
    const resolved: string[] = [];
    const caller = delivery({
      ...options,
      resolve: (edgeId) => {
        resolved.push(edgeId);
        return Promise.resolve(edges()[edgeId]?.address());
      },
    });
    return { caller, resolved };
  }

  function target(edgeId: string, sessionId = unique('s')): DeliveryTarget {
    return { edgeId, sessionId, jid: `${unique('romeo')}@example.net/orchard` };
  }

  const stanza = (n: number): DeliveryPayload => ({ kind: 'stanza', xml: `<message id="m${n}"/>` });

  it('delivers to an edge served by another instance over one stream', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    const calls: { target: DeliveryTarget; payload: DeliveryPayload }[] = [];
    const endpoint = await edge.listen(edgeId, (t, payload) => {
      calls.push({ target: t, payload });
      return Promise.resolve(true);
    });
    expect(endpoint.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(endpoint.address).not.toBe('127.0.0.1:0');
    expect(edge.address()).toBe(endpoint.address);
    const { caller, resolved } = router(() => ({ [edgeId]: edge }));

    const to = target(edgeId);
    const close: DeliveryPayload = { kind: 'close', condition: 'conflict', text: '' };
    expect(await caller.deliver(to, stanza(1))).toBe(true);
    expect(await caller.deliver(to, close)).toBe(true);
    expect(await caller.deliver(to, stanza(2))).toBe(true);
    expect(calls).toEqual([
      { target: to, payload: stanza(1) },
      { target: to, payload: close },
      { target: to, payload: stanza(2) },
    ]);
    expect(resolved).toEqual([edgeId]);
  });

  it('answers false for an edge id the process at that address does not serve', async () => {
    const edge = delivery();
    await edge.listen(unique('edge'), () => Promise.resolve(true));
    const stranger = unique('edge');
    const { caller } = router(() => ({ [stranger]: edge }));
    expect(await caller.deliver(target(stranger), stanza(1))).toBe(false);
  });

  it('keeps the order of 1,000 deliveries on one stream and matches each answer to its delivery', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    const seen: string[] = [];
    const slow = deferred();
    const allArrived = deferred();
    await edge.listen(edgeId, async (t, payload) => {
      seen.push(payload.kind === 'stanza' ? payload.xml : '');
      if (seen.length === 1_000) allArrived.resolve();
      const n = Number(t.sessionId);
      // The first answer comes last: answers are matched by id, not by position.
      if (n === 0) await slow.promise;
      return n % 3 !== 0;
    });
    const { caller } = router(() => ({ [edgeId]: edge }));
    const results = Array.from({ length: 1_000 }, (_, n) =>
      caller.deliver(target(edgeId, String(n)), stanza(n)),
    );
    try {
      // Every delivery reaches the receiver while the first one is still unanswered.
      await allArrived.promise;
    } finally {
      slow.resolve();
    }
    expect(await Promise.all(results)).toEqual(Array.from({ length: 1_000 }, (_, n) => n % 3 !== 0));
    expect(seen).toEqual(Array.from({ length: 1_000 }, (_, n) => `<message id="m${n}"/>`));
  });

  it('delivers stanzas larger than one message should carry, in order', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    const seen: string[] = [];
    await edge.listen(edgeId, (_t, payload) => {
      seen.push(payload.kind === 'stanza' ? payload.xml : '');
      return Promise.resolve(true);
    });
    const { caller } = router(() => ({ [edgeId]: edge }));
    // About 1 MiB of UTF-8 each, 5 MiB together: more than gRPC's default message limit.
    const big = Array.from(
      { length: 5 },
      (_, n) => `<message id="b${n}"><body>${'♥'.repeat(350_000)}</body></message>`,
    );
    const results = big.map((xml) => caller.deliver(target(edgeId), { kind: 'stanza', xml }));
    expect(await Promise.all(results)).toEqual([true, true, true, true, true]);
    expect(seen).toEqual(big);
  });

  it('on close, still sends what it took and waits for the answers', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    let received = 0;
    await edge.listen(edgeId, () => {
      received++;
      return Promise.resolve(true);
    });
    const { caller } = router(() => ({ [edgeId]: edge }));
    const taken = [caller.deliver(target(edgeId), stanza(1)), caller.deliver(target(edgeId), stanza(2))];
    await caller.close();
    expect(await Promise.all(taken)).toEqual([true, true]);
    expect(received).toBe(2);
  });

  it('resolves false for a receiver that hangs, and the stream goes on', async () => {
    const edgeId = unique('edge');
    const edge = delivery({ deadlineMs: 500 });
    const stuck = deferred<boolean>();
    await edge.listen(edgeId, (t) => (t.sessionId === 'stuck' ? stuck.promise : Promise.resolve(true)));
    const { caller, resolved } = router(() => ({ [edgeId]: edge }), { deadlineMs: 200 });
    try {
      expect(await caller.deliver(target(edgeId, 'stuck'), stanza(1))).toBe(false);
      // The late answer is dropped; the stream stays up for the sessions that answer.
      stuck.resolve(true);
      expect(await caller.deliver(target(edgeId, 'fine'), stanza(2))).toBe(true);
      expect(resolved).toEqual([edgeId]);
    } finally {
      stuck.resolve(true);
    }
  });

  it('resolves false when the edge stops mid-way, and delivers again once it listens on a new port', async () => {
    const edgeId = unique('edge');
    const first = delivery({ deadlineMs: 200 });
    const held = deferred<boolean>();
    const arrived = deferred();
    await first.listen(edgeId, (t) => {
      if (t.sessionId !== 'held') return Promise.resolve(true);
      arrived.resolve();
      return held.promise;
    });
    let current = first;
    const { caller, resolved } = router(() => ({ [edgeId]: current }), { deadlineMs: 5_000 });
    try {
      expect(await caller.deliver(target(edgeId), stanza(1))).toBe(true);
      const inFlight = caller.deliver(target(edgeId, 'held'), stanza(2));
      await arrived.promise;
      // The receiver never answers; the edge gives up on it after its own deadline and goes away.
      await first.close();
      expect(await inFlight).toBe(false);
      expect(await caller.deliver(target(edgeId), stanza(3))).toBe(false);

      const second = delivery();
      const received: string[] = [];
      await second.listen(edgeId, (_t, payload) => {
        received.push(payload.kind === 'stanza' ? payload.xml : '');
        return Promise.resolve(true);
      });
      expect(second.address()).not.toBe(first.address());
      current = second;
      await waitFor(
        () => caller.deliver(target(edgeId), stanza(4)),
        10_000,
        'delivery to the restarted edge',
      );
      expect(received).toEqual([`<message id="m4"/>`]);
      expect(resolved.length).toBeGreaterThanOrEqual(2);
    } finally {
      held.resolve(true);
    }
  });

  it('does not try an unreachable edge again until its backoff ran out', async () => {
    const gone = delivery();
    await gone.listen(unique('edge'), () => Promise.resolve(true));
    const address = gone.address();
    await gone.close();
    const edgeId = unique('edge');
    let resolves = 0;
    const caller = delivery({
      backoffMs: { initial: 60_000, max: 60_000 },
      resolve: () => {
        resolves++;
        return Promise.resolve(address);
      },
    });
    expect(await caller.deliver(target(edgeId), stanza(1))).toBe(false);
    expect(await caller.deliver(target(edgeId), stanza(2))).toBe(false);
    expect(resolves).toBe(1);
  });

  it('resolves false at the deadline for an address that accepts connections but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent: NetServer = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    track({
      close: () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => resolve());
        }),
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const caller = delivery({ deadlineMs: 200, resolve: () => Promise.resolve(`127.0.0.1:${port}`) });
    const edgeId = unique('edge');
    expect(await caller.deliver(target(edgeId), stanza(1))).toBe(false);
    expect(await caller.deliver(target(edgeId), stanza(2))).toBe(false);
  });

  it('resolves false, never rejects, when the address is unknown or cannot be looked up', async () => {
    const unknown = delivery();
    expect(await unknown.deliver(target(unique('edge')), stanza(1))).toBe(false);
    const broken = delivery({ resolve: () => Promise.reject(new Error('registry down')) });
    expect(await broken.deliver(target(unique('edge')), stanza(1))).toBe(false);
  });

  it('answers false when the receiver throws or rejects', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    await edge.listen(edgeId, (t) => {
      if (t.sessionId === 'throws') throw new Error('receiver broke');
      return Promise.reject(new Error('receiver broke'));
    });
    const { caller } = router(() => ({ [edgeId]: edge }));
    expect(await caller.deliver(target(edgeId, 'throws'), stanza(1))).toBe(false);
    expect(await caller.deliver(target(edgeId, 'rejects'), stanza(2))).toBe(false);
  });

  it('on close, lets the edge answer what is in flight before the stream ends', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    const release = deferred<boolean>();
    const arrived = deferred();
    await edge.listen(edgeId, () => {
      arrived.resolve();
      return release.promise;
    });
    const { caller } = router(() => ({ [edgeId]: edge }));
    const inFlight = caller.deliver(target(edgeId), stanza(1));
    await arrived.promise;
    const closing = edge.close();
    release.resolve(true);
    expect(await inFlight).toBe(true);
    await closing;
    expect(await caller.deliver(target(edgeId), stanza(2))).toBe(false);
  });

  it('refuses a second receiver for an edge, and listen or deliver after close', async () => {
    const edgeId = unique('edge');
    const edge = delivery();
    await edge.listen(edgeId, () => Promise.resolve(true));
    await expect(edge.listen(edgeId, () => Promise.resolve(true))).rejects.toThrow(/already/);
    const { caller } = router(() => ({ [edgeId]: edge }));
    await caller.close();
    expect(await caller.deliver(target(edgeId), stanza(1))).toBe(false);
    await expect(caller.listen(unique('edge'), () => Promise.resolve(true))).rejects.toThrow(/close/);
  });
});

describe('GrpcDelivery traces', () => {
  let recorder: SpanRecorder;

  beforeAll(async () => {
    recorder = await recordSpans();
  });

  afterAll(async () => {
    await recorder.stop();
  });

  it("runs the edge's receiver in a span of the caller's trace, per delivery on one stream", async () => {
    const edgeId = unique('edge');
    const edge = new GrpcDelivery({ resolve: () => Promise.resolve(undefined) });
    const caller = new GrpcDelivery({ resolve: () => Promise.resolve(edge.address()) });
    try {
      const active: (string | undefined)[] = [];
      await edge.listen(edgeId, () => {
        active.push(trace.getActiveSpan()?.spanContext().spanId);
        return Promise.resolve(true);
      });
      const to: DeliveryTarget = { edgeId, sessionId: unique('s'), jid: 'romeo@example.net/orchard' };
      const close: DeliveryPayload = { kind: 'close', condition: 'conflict' };
      // Two traces at once over the one stream to the edge.
      const answers = await Promise.all([
        inSpan('first', {}, () => caller.deliver(to, { kind: 'stanza', xml: '<message/>' })),
        inSpan('second', {}, () => caller.deliver(to, close)),
      ]);
      expect(answers).toEqual([true, true]);
      await waitFor(async () => (await recorder.spans()).length === 6, 5_000, 'six spans');

      const spans = await recorder.spans();
      const clients = spans.filter((s) => s.kind === SpanKind.CLIENT);
      const servers = spans.filter((s) => s.kind === SpanKind.SERVER);
      expect(clients).toHaveLength(2);
      expect(servers).toHaveLength(2);
      for (const name of ['first', 'second']) {
        const outer = await recorder.one(name);
        const traceId = outer.spanContext().traceId;
        const client = clients.find((s) => s.spanContext().traceId === traceId);
        const server = servers.find((s) => s.spanContext().traceId === traceId);
        expect(client?.name).toBe('starling.delivery.v1.Delivery/Deliver');
        expect(client?.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
        expect(server?.name).toBe('starling.delivery.v1.Delivery/Deliver');
        expect(server?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
        expect(active).toContain(server?.spanContext().spanId);
        expect(server?.attributes).toEqual({
          'rpc.system': 'grpc',
          'rpc.service': 'starling.delivery.v1.Delivery',
          'rpc.method': 'Deliver',
          'starling.edge.id': edgeId,
          'starling.delivery.payload': name === 'first' ? 'stanza' : 'close',
          'starling.delivery.delivered': true,
        });
      }
      // The session's JID is personal data: it stays out of spans.
      expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('romeo');
    } finally {
      await caller.close();
      await edge.close();
    }
  });

  it("starts a trace at a delivery outside any span, and records the edge's refusal", async () => {
    recorder.reset();
    const edgeId = unique('edge');
    const edge = new GrpcDelivery({ resolve: () => Promise.resolve(undefined) });
    const caller = new GrpcDelivery({ resolve: () => Promise.resolve(edge.address()) });
    try {
      let parent: string | undefined = 'unset';
      await edge.listen(edgeId, () => {
        parent = trace.getActiveSpan()?.spanContext().traceId;
        return Promise.resolve(false);
      });
      const to: DeliveryTarget = { edgeId, sessionId: unique('s'), jid: 'romeo@example.net/orchard' };
      expect(await caller.deliver(to, { kind: 'stanza', xml: '<message/>' })).toBe(false);
      await waitFor(async () => (await recorder.spans()).length === 2, 5_000, 'two spans');
      const [server, client] = await recorder.spans();
      // The caller's own span still starts a trace that the edge continues.
      expect(client?.parentSpanContext).toBeUndefined();
      expect(server?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
      expect(parent).toBe(client?.spanContext().traceId);
      expect(server?.attributes['starling.delivery.delivered']).toBe(false);
    } finally {
      await caller.close();
      await edge.close();
    }
  });
});
