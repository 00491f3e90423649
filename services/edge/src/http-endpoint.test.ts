// The edge's HTTP listener: /metrics only where asked for (the embedded server), and only for loopback.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpEndpoint, isLoopback, type HttpEndpoint } from './http-endpoint.ts';

let endpoint: HttpEndpoint | undefined;

afterEach(async () => {
  await endpoint?.close();
  endpoint = undefined;
});

async function started(metrics: boolean): Promise<string> {
  endpoint = createHttpEndpoint({
    accepting: () => true,
    maxPayload: 1024,
    onWebSocket: (socket) => socket.close(),
    metrics,
  });
  const server = endpoint.server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('HTTP endpoint /metrics', () => {
  it('serves the metric catalogue to a loopback client when asked to', async () => {
    const response = await fetch(`${await started(true)}/metrics`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('xmpp_process_');
  });

  it('has no /metrics unless asked (cluster edges serve theirs on the ops port)', async () => {
    const response = await fetch(`${await started(false)}/metrics`);
    expect(response.status).toBe(404);
  });

  it('tells loopback addresses from others, IPv4-mapped ones included', () => {
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      expect(isLoopback(address), address).toBe(true);
    }
    for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '::2', 'fe80::1', '1127.0.0.1', '', undefined]) {
      expect(isLoopback(address), String(address)).toBe(false);
    }
  });
});
