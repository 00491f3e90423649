// In-memory SessionRegistry: the port contract, plus the index and immutability of the embedded adapter.
import type { SessionRecord } from '@starling/ports';
import { describeSessionRegistryContract } from '@starling/ports/contracts';
import { describe, expect, it } from 'vitest';
import { MemorySessionRegistry } from './memory-session-registry.ts';

describeSessionRegistryContract('MemorySessionRegistry', () => Promise.resolve(new MemorySessionRegistry()));

describe('MemorySessionRegistry', () => {
  const record: SessionRecord = {
    jid: 'juliet@example.com/balcony',
    sessionId: 's1',
    edgeId: 'edge-1',
    boundAt: 1,
    priority: 0,
    available: false,
    interested: false,
    directed: ['romeo@example.net'],
  };

  it('keeps its own copy of a bound record', async () => {
    const registry = new MemorySessionRegistry();
    const directed = ['romeo@example.net'];
    await registry.bind({ ...record, directed });
    directed.push('nurse@example.com');
    expect((await registry.get(record.jid))?.directed).toEqual(['romeo@example.net']);
  });

  it('hands out records that cannot be changed in place', async () => {
    const registry = new MemorySessionRegistry();
    await registry.bind(record);
    const got = (await registry.get(record.jid)) as unknown as { priority: number; directed: string[] };
    expect(() => {
      got.priority = 5;
    }).toThrow(TypeError);
    expect(() => got.directed.push('x@example.com')).toThrow(TypeError);
  });

  it('forgets a bare JID once its last resource is unbound', async () => {
    const registry = new MemorySessionRegistry();
    await registry.bind(record);
    await registry.bind({ ...record, jid: 'juliet@example.com/tomb', sessionId: 's2' });
    await registry.unbind(record.jid, 's1');
    expect((await registry.resources('juliet@example.com')).map((r) => r.jid)).toEqual([
      'juliet@example.com/tomb',
    ]);
    await registry.unbind('juliet@example.com/tomb', 's2');
    expect(await registry.resources('juliet@example.com')).toEqual([]);
    await registry.bind(record);
    expect(await registry.resources('juliet@example.com')).toEqual([record]);
  });
});
