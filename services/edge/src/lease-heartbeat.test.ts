// Guarantee 4: a running edge holds a lease in the registry, renews it, and gives it up on a clean drain.
import { describe, expect, it } from 'vitest';
import { MemorySessionRegistry } from '@starling/adapters';
import { silentLogger } from '@starling/core';
import { startLeaseHeartbeat } from './lease-heartbeat.ts';
import { startTestEdge } from './test-edge.ts';

describe('edge lease', () => {
  it('is taken when the edge starts and dropped when it closes cleanly', async () => {
    const edge = await startTestEdge();
    const lease = await edge.registry.lease('edge-test');
    expect(lease?.expiresAt).toBeGreaterThan(Date.now());
    expect(await edge.registry.expiredEdges()).toEqual([]);
    await edge.close();
    expect(await edge.registry.lease('edge-test')).toBeUndefined();
  });

  it('is renewed before it runs out, and kept (for the sweeper) when the edge stops without draining', async () => {
    let now = 0;
    const registry = new MemorySessionRegistry(() => now);
    const heartbeat = await startLeaseHeartbeat(registry, 'edge-a', '127.0.0.1:7000', 30, silentLogger());
    expect((await registry.lease('edge-a'))?.expiresAt).toBe(30);
    now = 1_000;
    // A renewal is due every 10 ms of real time; each one moves the expiry past the new "now".
    await expect.poll(async () => (await registry.lease('edge-a'))?.expiresAt, { timeout: 2000 }).toBe(1_030);
    await heartbeat.stop(false);
    now = 5_000;
    expect(await registry.expiredEdges()).toEqual(['edge-a']);
  });
});
