// XEP-0198 on the edge, below the stream: registry failures, and <r/>s waiting for the handled count.
import { describe, expect, it } from 'vitest';
import { MemorySessionRegistry } from '@starling/adapters';
import type { Element } from '@starling/xmpp';
import { ManagedStream } from './stream-management.ts';

const JID = 'juliet@example.com/balcony';

async function managed(
  registry: MemorySessionRegistry,
): Promise<{ stream: ManagedStream; written: Element[] }> {
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
  const stream = new ManagedStream({
    registry,
    id: 'sm1',
    resumable: true,
    timeoutMs: 60_000,
    jid: JID,
    sessionId: 's1',
    io: {
      write: (el) => written.push(el),
      tooHigh: () => undefined,
      lost: () => Promise.resolve(true),
    },
  });
  return { stream, written };
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
});
