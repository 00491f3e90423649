// XEP-0198 on the edge, below the stream: registry failures, and <r/>s waiting for the handled count.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemorySessionRegistry } from '@starling/adapters';
import type { Element } from '@starling/xmpp';
import { ManagedStream } from './stream-management.ts';

const JID = 'juliet@example.com/balcony';

async function managed(
  registry: MemorySessionRegistry,
): Promise<{ stream: ManagedStream; written: Element[]; out: string[]; late: number[] }> {
  await registry.bind({
    jid: JID,
    sessionId: 's1',
    edgeId: 'e1',
    boundAt: 0,
    priority: 0,
    available: true,
    interested: false,
  });
  await registry.openStream(JID, 's1', 'sm1', 60_000);
  const written: Element[] = [];
  const out: string[] = [];
  const late: number[] = [];
  const stream = new ManagedStream({
    registry,
    id: 'sm1',
    resumable: true,
    timeoutMs: 60_000,
    jid: JID,
    sessionId: 's1',
    io: {
      write: (el) => written.push(el),
      writeStanza: (stanza) => out.push(stanza),
      wroteLate: (count) => late.push(count),
      tooHigh: () => undefined,
      lost: () => Promise.resolve(true),
    },
  });
  return { stream, written, out, late };
}

describe('a managed stream', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('refuses a stanza the registry cannot queue, without rejecting, and goes on with the next', async () => {
    const registry = new MemorySessionRegistry();
    const { stream, out } = await managed(registry);
    const push = registry.streamPush.bind(registry);
    let failing = true;
    registry.streamPush = (...args) => (failing ? Promise.reject(new Error('registry down')) : push(...args));
    expect(await stream.send('<message id="1"/>')).toBe(false);
    failing = false;
    expect(await stream.send('<message id="2"/>')).toBe(true);
    expect(out).toEqual(['<message id="2"/>']);
    stream.end();
  });

  it('answers every <r/> once the handled count is stored, in order, however many came meanwhile', async () => {
    const registry = new MemorySessionRegistry();
    const { stream, written } = await managed(registry);
    const first = stream.receive();
    stream.requestAck();
    stream.requestAck();
    const second = stream.receive();
    stream.requestAck();
    expect(written).toEqual([]);
    stream.handle(second);
    stream.handle(first);
    await stream.settled();
    expect(written.map((el) => `${el.name} ${String(el.attrs.h)}`)).toEqual(['a 1', 'a 1', 'a 2']);
    stream.end();
  });

  it('writes what a router queued for it when its delivery failed, in order, before the next stanza', async () => {
    const registry = new MemorySessionRegistry();
    const { stream, out, late } = await managed(registry);
    expect(await stream.send('<message id="1"/>')).toBe(true);
    // A router whose delivery failed (a deadline, a broken connection) queues the stanza itself.
    expect(await registry.streamPush(JID, 'sm1', 's1', '<message id="2"/>')).toBe(2);
    expect(await stream.send('<message id="3"/>')).toBe(true);
    expect(out).toEqual(['<message id="1"/>', '<message id="2"/>', '<message id="3"/>']);
    expect(late).toEqual([1]);
    // The client's count is the queue's: its h for all three is right, and nothing is left.
    expect(await registry.streamAck(JID, 'sm1', 's1', 3)).toEqual({ ok: true, sent: 3 });
    expect(await registry.streamQueued(JID, 'sm1', 's1', 0)).toEqual({ sent: 3, stanzas: [] });
    stream.end();
  });

  it('writes a stanza a router queued first when the same delivery reaches it late, and a retried one once', async () => {
    const registry = new MemorySessionRegistry();
    const { stream, out } = await managed(registry);
    // The router gave up on the delivery and queued the stanza; then the delivery came through.
    expect(await registry.streamPush(JID, 'sm1', 's1', '<message id="1"/>')).toBe(1);
    expect(await stream.send('<message id="1"/>')).toBe(true);
    // A router that retried a delivery whose answer it missed: queued and written once.
    expect(await stream.send('<message id="2"/>')).toBe(true);
    expect(await stream.send('<message id="2"/>')).toBe(true);
    expect(await stream.send('<message id="3"/>')).toBe(true);
    expect(out).toEqual(['<message id="1"/>', '<message id="2"/>', '<message id="3"/>']);
    expect(await registry.streamAck(JID, 'sm1', 's1', 3)).toEqual({ ok: true, sent: 3 });
    stream.end();
  });

  it("writes what a router queued for it when the client's <a/> shows more queued than it wrote", async () => {
    const registry = new MemorySessionRegistry();
    const { stream, out, late } = await managed(registry);
    expect(await stream.send('<message id="1"/>')).toBe(true);
    // Stranded: the router queued it itself, and this stream sends nothing after it.
    expect(await registry.streamPush(JID, 'sm1', 's1', '<message id="2"/>')).toBe(2);
    await stream.ack(1);
    await stream.settled();
    expect(out).toEqual(['<message id="1"/>', '<message id="2"/>']);
    expect(late).toEqual([1]);
    stream.end();
  });

  it('writes its own stanza once, asking nothing more, when an <a/> counts it before its push came back', async () => {
    const registry = new MemorySessionRegistry();
    const { stream, out, late } = await managed(registry);
    const queued = registry.streamQueued.bind(registry);
    let looks = 0;
    registry.streamQueued = (...args) => {
      looks += 1;
      return queued(...args);
    };
    const push = registry.streamPush.bind(registry);
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    registry.streamPush = async (...args) => {
      const number = await push(...args);
      await gate;
      return number;
    };
    const sending = stream.send('<message id="1"/>');
    await new Promise((resolve) => setImmediate(resolve));
    expect(await registry.streamQueued(JID, 'sm1', 's1', 0)).toMatchObject({ sent: 1 });
    await stream.ack(0);
    open();
    expect(await sending).toBe(true);
    await stream.settled();
    expect(out).toEqual(['<message id="1"/>']);
    expect(late).toEqual([]);
    // The test's own look above, and none from the stream: its <a/> costs no extra registry call.
    expect(looks).toBe(1);
    stream.end();
  });

  it("looks for a stranded stanza at a client's <r/> once it asked the registry nothing for 30 s", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const registry = new MemorySessionRegistry();
    const { stream, out, written } = await managed(registry);
    expect(await stream.send('<message id="1"/>')).toBe(true);
    await stream.ack(1);
    expect(await registry.streamPush(JID, 'sm1', 's1', '<message id="2"/>')).toBe(2);
    vi.setSystemTime(Date.now() + 29_000);
    stream.requestAck();
    await stream.settled();
    expect(out).toEqual(['<message id="1"/>']);
    vi.setSystemTime(Date.now() + 1_000);
    stream.requestAck();
    await stream.settled();
    expect(out).toEqual(['<message id="1"/>', '<message id="2"/>']);
    expect(written.filter((el) => el.name === 'a').map((el) => String(el.attrs.h))).toEqual(['0', '0']);
    stream.end();
  });
});
