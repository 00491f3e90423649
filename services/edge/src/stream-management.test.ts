// XEP-0198 on the edge, below the stream: registry failures, and <r/>s waiting for the handled count.
import { describe, expect, it } from 'vitest';
import { MemorySessionRegistry } from '@starling/adapters';
import type { Element } from '@starling/xmpp';
import { ManagedStream } from './stream-management.ts';

const JID = 'juliet@example.com/balcony';

async function managed(
  registry: MemorySessionRegistry,
): Promise<{ stream: ManagedStream; written: Element[]; late: number[] }> {
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
      wroteLate: (count) => late.push(count),
      tooHigh: () => undefined,
      lost: () => Promise.resolve(true),
    },
  });
  return { stream, written, late };
}

describe('a managed stream', () => {
  it('refuses a stanza the registry cannot queue, without rejecting, and goes on with the next', async () => {
    const registry = new MemorySessionRegistry();
    const { stream } = await managed(registry);
    const push = registry.streamPush.bind(registry);
    let failing = true;
    registry.streamPush = (...args) => (failing ? Promise.reject(new Error('registry down')) : push(...args));
    const out: string[] = [];
    expect(await stream.send('<message id="1"/>', (s) => out.push(s))).toBe(false);
    failing = false;
    expect(await stream.send('<message id="2"/>', (s) => out.push(s))).toBe(true);
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
    const { stream, late } = await managed(registry);
    const out: string[] = [];
    const write = (stanza: string): number => out.push(stanza);
    expect(await stream.send('<message id="1"/>', write)).toBe(true);
    // A router whose delivery failed (a deadline, a broken connection) queues the stanza itself.
    expect(await registry.streamPush(JID, 'sm1', 's1', '<message id="2"/>')).toBe(2);
    expect(await stream.send('<message id="3"/>', write)).toBe(true);
    expect(out).toEqual(['<message id="1"/>', '<message id="2"/>', '<message id="3"/>']);
    expect(late).toEqual([1]);
    // The client's count is the queue's: its h for all three is right, and nothing is left.
    expect(await registry.streamAck(JID, 'sm1', 's1', 3)).toEqual({ ok: true, sent: 3 });
    expect(await registry.streamQueued(JID, 'sm1', 's1', 0)).toEqual({ sent: 3, stanzas: [] });
    stream.end();
  });

  it('writes a stanza a router queued first when the same delivery reaches it late, and a retried one once', async () => {
    const registry = new MemorySessionRegistry();
    const { stream } = await managed(registry);
    const out: string[] = [];
    const write = (stanza: string): number => out.push(stanza);
    // The router gave up on the delivery and queued the stanza; then the delivery came through.
    expect(await registry.streamPush(JID, 'sm1', 's1', '<message id="1"/>')).toBe(1);
    expect(await stream.send('<message id="1"/>', write)).toBe(true);
    // A router that retried a delivery whose answer it missed: queued and written once.
    expect(await stream.send('<message id="2"/>', write)).toBe(true);
    expect(await stream.send('<message id="2"/>', write)).toBe(true);
    expect(await stream.send('<message id="3"/>', write)).toBe(true);
    expect(out).toEqual(['<message id="1"/>', '<message id="2"/>', '<message id="3"/>']);
    expect(await registry.streamAck(JID, 'sm1', 's1', 3)).toEqual({ ok: true, sent: 3 });
    stream.end();
  });
});
