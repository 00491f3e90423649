// The internal endpoint answers Prometheus and Kubernetes probes, and readiness follows the role.
import { describe, expect, it } from 'vitest';
import { stanzasIn } from './metrics.ts';
import { startOpsServer } from './ops-server.ts';

describe('ops server', () => {
  it('serves metrics, health and readiness', async () => {
    let ready = false;
    const ops = await startOpsServer('127.0.0.1', 0, () => ready);
    const base = `http://127.0.0.1:${ops.port}`;
    try {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      stanzasIn.labels('message').inc();
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^xmpp_stanzas_received_total\{kind="message"\} [1-9]/m);
      expect(metrics).toContain('xmpp_process_');
      expect((await fetch(`${base}/nothing`)).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await ops.close();
    }
  });
});
