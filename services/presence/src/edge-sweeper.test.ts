// Guarantee 4: an edge that stops renewing its lease has its sessions ended, once, by whoever sweeps.
import { describe, expect, it } from 'vitest';
import { MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { decodeEnvelope, silentLogger, TOPIC_PRESENCE, TOPIC_STANZAS, type Envelope } from '@starling/core';
import type { SessionRecord } from '@starling/ports';
import { startEdgeSweeper } from './edge-sweeper.ts';

function record(jid: string, edgeId: string): SessionRecord {
  return { jid, sessionId: `${jid}#1`, edgeId, boundAt: 0, priority: 0, available: true, interested: true };
}

describe('edge sweeper', () => {
  it('ends every session of an expired edge exactly once, leaves live edges alone, and drops the lease', async () => {
    let now = 1_000;
    const registry = new MemorySessionRegistry(() => now);
    const bus = new MemoryStanzaBus();
    const ends: Envelope[] = [];
    await bus.subscribe(TOPIC_PRESENCE, 'test', (r) => {
      ends.push(decodeEnvelope(r.value));
      return Promise.resolve();
    });
    await registry.renewLease('dead', '', 10_000);
    await registry.renewLease('alive', '', 10_000);
    await registry.bind(record('romeo@example.com/a', 'dead'));
    await registry.bind(record('juliet@example.com/b', 'dead'));
    await registry.bind(record('nurse@example.com/c', 'alive'));

    // Two presence processes sweep the same moment: the dead edge's sessions end once in total.
    const first = startEdgeSweeper(registry, bus, silentLogger(), 60_000);
    const second = startEdgeSweeper(registry, bus, silentLogger(), 60_000);
    expect(await first.sweep()).toBe(0);
    now += 5_000;
    await registry.renewLease('alive', '', 10_000);
    now += 6_000;
    const swept = await Promise.all([first.sweep(), second.sweep()]);
    expect(swept[0] + swept[1]).toBe(2);
    await expect.poll(() => ends.length).toBe(2);
    expect(ends.map((e) => (e.t === 'session-end' ? e.record.jid : '')).sort()).toEqual([
      'juliet@example.com/b',
      'romeo@example.com/a',
    ]);
    expect(await registry.get('romeo@example.com/a')).toBeUndefined();
    expect(await registry.get('nurse@example.com/c')).toBeDefined();
    expect(await registry.lease('dead')).toBeUndefined();
    expect(await registry.lease('alive')).toBeDefined();
    await first.stop();
    await second.stop();
    await bus.close();
  });

  it('does not end a session that moved to a live edge before the sweep', async () => {
    let now = 0;
    const registry = new MemorySessionRegistry(() => now);
    const bus = new MemoryStanzaBus();
    await registry.renewLease('dead', '', 1_000);
    await registry.bind(record('romeo@example.com/a', 'dead'));
    // The client reconnected elsewhere and bound the same full JID again.
    await registry.bind({ ...record('romeo@example.com/a', 'alive'), sessionId: 'new' });
    now = 2_000;
    const sweeper = startEdgeSweeper(registry, bus, silentLogger(), 60_000);
    expect(await sweeper.sweep()).toBe(0);
    expect((await registry.get('romeo@example.com/a'))?.sessionId).toBe('new');
    await sweeper.stop();
    await bus.close();
  });

  it('keeps a stream-managed session of a dead edge for resumption, then ends it and routes its queue again', async () => {
    let now = 0;
    const registry = new MemorySessionRegistry(() => now);
    const bus = new MemoryStanzaBus();
    const presence: Envelope[] = [];
    const stanzas: Envelope[] = [];
    await bus.subscribe(TOPIC_PRESENCE, 'test', (r) => {
      presence.push(decodeEnvelope(r.value));
      return Promise.resolve();
    });
    await bus.subscribe(TOPIC_STANZAS, 'test', (r) => {
      stanzas.push(decodeEnvelope(r.value));
      return Promise.resolve();
    });
    const juliet = record('juliet@example.com/b', 'dead');
    await registry.renewLease('dead', '', 1_000);
    await registry.bind(juliet);
    await registry.openStream(juliet.jid, juliet.sessionId, 'sm1', 30_000);
    await registry.streamPush(juliet.jid, 'sm1', juliet.sessionId, "<presence from='romeo@example.com/a'/>");
    await registry.streamPush(
      juliet.jid,
      'sm1',
      juliet.sessionId,
      "<message id='m1'><body>hi</body></message>",
    );
    const sweeper = startEdgeSweeper(registry, bus, silentLogger(), 60_000);

    now = 2_000;
    // The lease ran out: the session waits for resumption instead of ending.
    expect(await sweeper.sweep()).toBe(0);
    expect(await registry.get(juliet.jid)).toBeDefined();
    expect(await registry.lease('dead')).toBeUndefined();
    now = 20_000;
    expect(await sweeper.sweep()).toBe(0);

    now = 33_000;
    expect(await sweeper.sweep()).toBe(1);
    expect(await registry.get(juliet.jid)).toBeUndefined();
    await expect.poll(() => presence.length).toBe(1);
    expect(presence[0]?.t === 'session-end' && presence[0].record.jid).toBe(juliet.jid);
    // The message goes back to routing; presence, being state, does not.
    await expect.poll(() => stanzas.length).toBe(1);
    expect(stanzas[0]).toMatchObject({ t: 'stanza', dir: 'unacked', from: juliet.jid });
    expect(stanzas[0]?.t === 'stanza' && stanzas[0].xml).toContain("id='m1'");
    expect(await sweeper.sweep()).toBe(0);
    await sweeper.stop();
    await bus.close();
  });
});
