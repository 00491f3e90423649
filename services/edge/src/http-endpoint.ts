// The HTTP listener: RFC 7395 WebSocket at /xmpp-websocket (subprotocol "xmpp" required), /healthz, /readyz,
// and in the embedded server /metrics for clients on this machine.
import { isIP } from 'node:net';
import { writeMetrics } from '@starling/core';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

const WEBSOCKET_PATH = '/xmpp-websocket';
const SUBPROTOCOL = 'xmpp';

export interface HttpEndpointOptions {
  /** False while draining: /readyz answers 503 and no WebSocket is accepted. */
  readonly accepting: () => boolean;
  /** Largest WebSocket message; larger ones close the connection (the parser reports smaller excesses). */
  readonly maxPayload: number;
  readonly onWebSocket: (socket: WebSocket, request: IncomingMessage) => void;
  /**
   * Serve /metrics (Prometheus text) to loopback clients, others getting 403: the embedded server has no
   * ops port of its own, and its figures are for the machine's own scraper, not the clients' network.
   */
  readonly metrics?: boolean;
}

export interface HttpEndpoint {
  readonly server: Server;
  /** Closes open WebSockets' server side bookkeeping and every idle HTTP connection. */
  close(): Promise<void>;
}

function json(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** Whether `address` (as a socket reports it) is 127.0.0.0/8, ::1 or an IPv4-mapped loopback address. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

function serveMetrics(request: IncomingMessage, response: ServerResponse): void {
  if (!isLoopback(request.socket.remoteAddress)) {
    json(response, 403, { status: 'forbidden', reason: '/metrics answers clients on this machine only' });
    return;
  }
  writeMetrics(response);
}

function refuse(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function offersXmpp(request: IncomingMessage): boolean {
  const header = request.headers['sec-websocket-protocol'];
  return header !== undefined && header.split(',').some((name) => name.trim() === SUBPROTOCOL);
}

/** Creates (but does not start) the HTTP server. */
export function createHttpEndpoint(options: HttpEndpointOptions): HttpEndpoint {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayload,
    handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  const server = createServer((request, response) => {
    const path = pathOf(request);
    const readable = request.method === 'GET' || request.method === 'HEAD';
    if (readable && path === '/healthz') return json(response, 200, { status: 'ok' });
    if (readable && path === '/readyz') {
      return options.accepting()
        ? json(response, 200, { status: 'ready' })
        : json(response, 503, { status: 'closing' });
    }
    if (readable && path === '/metrics' && options.metrics === true) return serveMetrics(request, response);
    json(response, 404, { status: 'not found' });
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (pathOf(request) !== WEBSOCKET_PATH) return refuse(socket, '404 Not Found');
    if (!options.accepting()) return refuse(socket, '503 Service Unavailable');
    if (!offersXmpp(request)) return refuse(socket, '400 Bad Request');
    wss.handleUpgrade(request, socket, head, (ws) => options.onWebSocket(ws, request));
  });
  server.on('clientError', (_err, socket) => refuse(socket, '400 Bad Request'));
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
