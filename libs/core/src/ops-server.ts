// Each cluster role's internal HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for Kubernetes.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metricsRegistry } from './metrics.ts';

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Answers with every metric of this process in the Prometheus text format (500 if collecting failed). */
export function writeMetrics(response: ServerResponse): void {
  metricsRegistry.metrics().then(
    (text) => response.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(text),
    () => response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
  );
}

/**
 * Serves `/metrics`, `/healthz` (the process is up) and `/readyz` (`ready()` says it takes work; 503 while
 * starting or draining).
 */
export async function startOpsServer(
  address: string,
  port: number,
  ready: () => boolean,
): Promise<OpsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET') {
      response.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      const ok = ready();
      response
        .writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(ok ? '{"status":"ready"}' : '{"status":"not ready"}');
    } else if (path === '/metrics') {
      writeMetrics(response);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
