// The edge role: c2s listeners (RFC 6120 STARTTLS, XEP-0368 direct TLS, RFC 7395 WebSocket) and their streams.
import { randomBytes } from 'node:crypto';
import { connections, hibernatedConnections } from '@starling/core';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer } from 'node:tls';
import type { RoleDeps, RoleHandle } from '@starling/core';
import { serverCaps } from '@starling/features';
import type { DeliveryPayload, DeliveryTarget } from '@starling/ports';
import { Jid } from '@starling/xmpp';
import { ClientStream } from './client-stream.ts';
import type { EdgeContext, LocalSession } from './edge-context.ts';
import { createHttpEndpoint } from './http-endpoint.ts';
import { IngressBudget } from './ingress-budget.ts';
import { LoginThrottle } from './login-throttle.ts';
import { SocketTransport } from './socket-transport.ts';
import type { Caps } from './stream-features.ts';
import type { Transport } from './transport.ts';
import { WebSocketTransport } from './websocket-transport.ts';
import { startLeaseHeartbeat, type LeaseHeartbeat } from './lease-heartbeat.ts';

export interface EdgeOptions extends RoleDeps {
  readonly edgeId: string;
  /** PEM certificate chain and private key for STARTTLS and direct TLS. */
  readonly tls: { readonly cert: string; readonly key: string };
  /** Serve /metrics on the HTTP port to loopback clients (the embedded server; cluster roles have an ops port). */
  readonly metricsOnHttp?: boolean;
}

export interface EdgeHandle extends RoleHandle {
  /** The bound ports (useful when the configuration asked for port 0). */
  readonly ports: { readonly c2s: number; readonly directTls: number; readonly http: number };
  /** Sessions currently bound on this edge. */
  sessionCount(): number;
}

function listen(server: Server, port: number, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound !== null ? bound.port : port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

function capsOf(deps: RoleDeps): Caps | undefined {
  try {
    return serverCaps(deps.config, deps.features);
  } catch (err) {
    deps.log.warn({ err }, 'entity capabilities unavailable');
    return undefined;
  }
}

/**
 * Starts the edge: listens on the c2s, direct TLS and HTTP ports of `config.listen`, registers with
 * Delivery as `edgeId`, and serves client streams until `close()`, which ends each with `system-shutdown`.
 */
export async function startEdge(options: EdgeOptions): Promise<EdgeHandle> {
  const { config } = options;
  const log = options.log.child({ role: 'edge', edgeId: options.edgeId });
  const secureContext = createSecureContext({ cert: options.tls.cert, key: options.tls.key });
  const sessions = new Map<string, LocalSession>();
  const domain = Jid.of('', config.domain).domain;
  const ctx: EdgeContext = {
    deps: options,
    edgeId: options.edgeId,
    domain,
    secureContext,
    throttle: new LoginThrottle(config.auth),
    caps: capsOf(options),
    sasl: {
      accounts: options.store.accounts,
      domain,
      iterations: config.auth.scramIterations,
      // Per process: fake salts stay stable for as long as an attacker can compare them on this edge.
      fakeSaltKey: randomBytes(32),
    },
    sessions,
    ingress: new IngressBudget(config.limits.unconfirmedStanzas),
  };
  const streams = new Set<ClientStream>();
  const perAddress = new Map<string, number>();
  let accepting = true;
  let nextConnection = 0;
  // Idle connections let go of their parsers' buffers: most of an edge's connections are idle at any time.
  const hibernateMs = config.limits.hibernateSeconds * 1000;
  const hibernation =
    hibernateMs > 0
      ? setInterval(() => {
          let sleeping = 0;
          for (const stream of streams) if (stream.hibernate()) sleeping += 1;
          hibernatedConnections.set(sleeping);
        }, hibernateMs).unref()
      : undefined;

  function accept(transport: Transport, kind: string): void {
    const address = transport.remoteAddress;
    const count = (perAddress.get(address) ?? 0) + 1;
    perAddress.set(address, count);
    nextConnection += 1;
    const stream = new ClientStream(
      ctx,
      transport,
      log.child({ conn: nextConnection, transport: kind, remote: address }),
    );
    streams.add(stream);
    connections.labels(kind).inc();
    void stream.finished.then(() => {
      connections.labels(kind).dec();
      streams.delete(stream);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
    stream.start();
    if (!accepting) stream.fail('system-shutdown');
    else if (count > config.limits.connectionsPerAddress) {
      stream.fail('policy-violation', 'Too many connections from your address');
    }
  }

  // Stanzas go out as they are ready: with Nagle's algorithm a small write waits for the client's
  // delayed acknowledgement of the previous one, up to 40 ms on Linux.
  const c2s = createTcpServer({ noDelay: true }, (socket) =>
    accept(new SocketTransport(socket, true), 'c2s'),
  );
  const directTls = createTlsServer(
    { cert: options.tls.cert, key: options.tls.key, noDelay: true },
    (socket) => accept(new SocketTransport(socket, false), 'direct-tls'),
  );
  directTls.on('tlsClientError', (err) => log.debug({ err }, 'TLS handshake failed'));
  // Connections still in the TLS handshake have no stream yet; draining ends them directly.
  const rawTls = new Set<Socket>();
  directTls.on('connection', (socket: Socket) => {
    rawTls.add(socket);
    socket.once('close', () => rawTls.delete(socket));
  });
  const http = createHttpEndpoint({
    accepting: () => accepting,
    maxPayload: config.limits.stanzaBytes * 2,
    metrics: options.metricsOnHttp === true,
    onWebSocket: (socket, request) =>
      accept(new WebSocketTransport(socket, request.socket.remoteAddress ?? 'unknown', false), 'websocket'),
  });

  const receiver = (target: DeliveryTarget, payload: DeliveryPayload): Promise<boolean> => {
    const session = sessions.get(target.sessionId);
    return Promise.resolve(session !== undefined && session.accepts(target.jid) && session.deliver(payload));
  };

  const servers = [c2s, directTls, http.server];
  let ports: EdgeHandle['ports'];
  let delivery: { readonly address: string; close(): Promise<void> };
  try {
    const { address } = config.listen;
    const [c2sPort, directTlsPort, httpPort] = await Promise.all([
      listen(c2s, config.listen.c2sPort, address),
      listen(directTls, config.listen.directTlsPort, address),
      listen(http.server, config.listen.httpPort, address),
    ]);
    ports = { c2s: c2sPort, directTls: directTlsPort, http: httpPort };
    delivery = await options.delivery.listen(options.edgeId, receiver);
  } catch (err) {
    await Promise.all(servers.map(closeServer));
    throw err;
  }
  let heartbeat: LeaseHeartbeat;
  try {
    heartbeat = await startLeaseHeartbeat(
      options.registry,
      options.edgeId,
      delivery.address,
      config.cluster.leaseSeconds * 1000,
      log,
      async () => {
        await Promise.all([...streams].map((stream) => stream.restore()));
      },
    );
  } catch (err) {
    await delivery.close();
    await Promise.all(servers.map(closeServer));
    throw err;
  }
  log.info({ ports }, 'edge listening');

  let closed: Promise<void> | undefined;
  async function drain(): Promise<void> {
    accepting = false;
    clearInterval(hibernation);
    hibernatedConnections.set(0);
    const stopped = Promise.all([closeServer(c2s), closeServer(directTls)]);
    for (const stream of streams) stream.fail('system-shutdown');
    await Promise.all([...streams].map((stream) => stream.finished));
    for (const socket of rawTls) socket.destroy();
    await stopped;
    // Every session was unbound above, so the lease can go without anything left to sweep.
    await heartbeat.stop(true);
    await delivery.close();
    await http.close();
    log.info('edge closed');
  }

  return {
    ports,
    sessionCount: () => [...streams].filter((stream) => stream.bound).length,
    close: () => (closed ??= drain()),
  };
}
