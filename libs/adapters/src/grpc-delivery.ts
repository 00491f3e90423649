// Delivery over gRPC (cluster shape): router and presence keep one Deliver stream per edge (proto/delivery.proto).
import { hostname } from 'node:os';
import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type ChannelOptions,
  type ClientDuplexStream,
  type ServerDuplexStream,
  type StatusObject,
} from '@grpc/grpc-js';
import { SpanKind, type Attributes } from '@opentelemetry/api';
import type { Logger } from '@starling/core';
import type {
  Delivery,
  DeliveryEndpoint,
  DeliveryPayload,
  DeliveryReceiver,
  DeliveryTarget,
} from '@starling/ports';
import {
  ATTR_DELIVERED,
  ATTR_DELIVERY_PAYLOAD,
  ATTR_EDGE_ID,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  extractTraceContext,
  inSpan,
  injectTraceContext,
} from '@starling/telemetry';
import type { StreamErrorCondition } from '@starling/xmpp';
import {
  EDGE_ID_METADATA,
  loadDeliveryPackage,
  type DeliverBatch,
  type DeliverBatch__Output,
  type DeliverRequest,
  type DeliverRequest__Output,
  type DeliverResult,
  type DeliverResults,
  type DeliverResults__Output,
  type DeliveryClient,
  type DeliveryHandlers,
} from '@starling/rpc';

/** How a GrpcDelivery reaches edges and, when it is an edge, where it is reached. */
export interface GrpcDeliveryOptions {
  /**
   * Where this process serves Delivery (host:port) once it listens for an edge. Default '127.0.0.1:0',
   * a free loopback port.
   */
  readonly listenAddress?: string;
  /**
   * The host (or host:port) other processes reach this one at, advertised in the edge's lease. Default:
   * the listen host, or this machine's host name when that is a wildcard ('0.0.0.0', '::').
   */
  readonly advertiseHost?: string;
  /**
   * The Delivery address (host:port) of an edge, from its registry lease; undefined (or '') when the
   * edge has none. Asked when a stream to the edge opens, not per delivery.
   */
  readonly resolve: (edgeId: string) => Promise<string | undefined>;
  /**
   * How long `deliver` waits for the edge's answer before resolving false. Also bounds how long
   * `close` lets the receivers of this process finish what they hold. Default 5000.
   */
  readonly deadlineMs?: number;
  /** Deliveries to one edge awaiting an answer; beyond, `deliver` resolves false at once. Default 10 000. */
  readonly maxInFlight?: number;
  /**
   * Pause before reopening a stream to an edge after a failed attempt, doubling per further failure
   * up to `max`. Default 100 ms to 5 s.
   */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  readonly log?: Logger;
}

interface Pending {
  readonly resolve: (delivered: boolean) => void;
  readonly expiresAt: number;
}

/** What a caller knows about one edge across its streams. */
interface EdgeState {
  readonly edgeId: string;
  link: Link | undefined;
  client: DeliveryClient | undefined;
  address: string | undefined;
  /** Attempts in a row that never reached the edge. */
  failures: number;
  retryAt: number;
}

/** One Deliver stream to an edge, from the first delivery that asked for it (the address may still be resolving). */
interface Link {
  readonly edge: EdgeState;
  call: ClientDuplexStream<DeliverBatch, DeliverResults__Output> | undefined;
  /** Requests of this turn of the event loop, sent as one message when it ends or the batch is full. */
  batch: DeliverRequest[];
  batchChars: number;
  flushQueued: boolean;
  /** Full batches taken before the call existed, in order. */
  backlog: DeliverBatch[];
  /** In send order, which with one deadline is also expiry order. */
  readonly pending: Map<number, Pending>;
  /** The edge answered the call's headers: it is reachable and serves Delivery. */
  established: boolean;
  done: boolean;
  timer: NodeJS.Timeout | undefined;
  nextId: number;
  /** Told when `pending` empties, while `close` waits for the answers of a half-closed stream. */
  idle: (() => void) | undefined;
}

/** A Deliver stream this process serves as an edge. */
interface Served {
  readonly call: ServerDuplexStream<DeliverBatch__Output, DeliverResults>;
  readonly edgeId: string;
  /** Answers of this turn of the event loop, sent as one message when it ends. */
  answers: DeliverResult[];
  inFlight: number;
  inputEnded: boolean;
  draining: boolean;
  ended: boolean;
}

const DEFAULT_LISTEN_ADDRESS = '127.0.0.1:0';
const DEFAULT_DEADLINE_MS = 5_000;
const DEFAULT_MAX_IN_FLIGHT = 10_000;
const DEFAULT_BACKOFF_MS = { initial: 100, max: 5_000 };
const FALSE: Promise<boolean> = Promise.resolve(false);
// A batch stays well under gRPC's default 4 MiB message limit even for stanzas of 3 bytes a character.
const MAX_BATCH_REQUESTS = 512;
const MAX_BATCH_CHARS = 512 * 1024;
const SERVICE = 'starling.delivery.v1.Delivery';
/** Both sides' span of one delivery, named as the OpenTelemetry RPC conventions name a call. */
const SPAN_NAME = `${SERVICE}/Deliver`;

const CHANNEL_OPTIONS: ChannelOptions = {
  // Pings notice an edge that vanished without closing its connection (power loss, partition).
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  // A channel is dropped after a failed attempt; a private subchannel pool makes the next one start
  // afresh, so only this adapter's backoff decides when an edge is tried again.
  'grpc.use_local_subchannel_pool': 1,
};

const SERVER_OPTIONS: ChannelOptions = {
  // Streams of a router that vanished are noticed and released.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // One stanza larger than a batch's budget travels alone; the edge's own stanza limit is far below.
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};

/**
 * The cluster Delivery. As a caller (router, presence) it keeps one long-lived bidirectional stream per
 * edge, opened on the first delivery and reopened on the next delivery after a failure (with backoff);
 * `deliver` resolves false on the deadline, a broken stream or an unknown or unreachable edge, and
 * never rejects. As an edge it serves the streams on `listenAddress` once `listen` was called, and
 * hands each delivery to the edge's receiver in the order of its stream. Each delivery is traced: a
 * CLIENT span on the caller, whose W3C trace context travels in the request, and a SERVER span around
 * the edge's receiver that continues it.
 */
export class GrpcDelivery implements Delivery {
  readonly #resolve: (edgeId: string) => Promise<string | undefined>;
  readonly #listenAddress: string;
  readonly #deadlineMs: number;
  readonly #maxInFlight: number;
  readonly #backoff: { readonly initial: number; readonly max: number };
  readonly #log: Logger | undefined;
  readonly #edges = new Map<string, EdgeState>();
  readonly #receivers = new Map<string, DeliveryReceiver>();
  readonly #served = new Set<Served>();
  #server: Promise<Server> | undefined;
  #address: string | undefined;
  readonly #advertiseHost: string | undefined;
  #draining = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: GrpcDeliveryOptions) {
    this.#resolve = options.resolve;
    this.#listenAddress = options.listenAddress ?? DEFAULT_LISTEN_ADDRESS;
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.#backoff = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.#log = options.log;
    this.#advertiseHost = options.advertiseHost;
  }

  /**
   * The address (host:port) `listen`'s endpoint gives, for the edge's lease: see `advertiseHost`.
   */
  address(): string {
    if (this.#address === undefined) throw new Error('delivery: address() before listen()');
    return this.#address;
  }

  deliver(target: DeliveryTarget, payload: DeliveryPayload): Promise<boolean> {
    return inSpan(
      SPAN_NAME,
      { kind: SpanKind.CLIENT, attributes: spanAttributes(target, payload) },
      (span, active) => {
        const trace: Record<string, string> = {};
        injectTraceContext(trace, active);
        return this.#deliver(target, payload, trace).then((delivered) => {
          span.setAttribute(ATTR_DELIVERED, delivered);
          return delivered;
        });
      },
    );
  }

  #deliver(
    target: DeliveryTarget,
    payload: DeliveryPayload,
    trace: Record<string, string>,
  ): Promise<boolean> {
    if (this.#closed) return FALSE;
    let edge = this.#edges.get(target.edgeId);
    if (edge === undefined) {
      edge = {
        edgeId: target.edgeId,
        link: undefined,
        client: undefined,
        address: undefined,
        failures: 0,
        retryAt: 0,
      };
      this.#edges.set(target.edgeId, edge);
    }
    let link = edge.link;
    if (link === undefined) {
      if (Date.now() < edge.retryAt) return FALSE;
      link = this.#open(edge);
    }
    if (link.pending.size >= this.#maxInFlight) return FALSE;
    const id = (link.nextId = (link.nextId + 1) >>> 0);
    const request = toRequest(id, target, payload, trace);
    const chars = payload.kind === 'stanza' ? payload.xml.length : 0;
    const stream = link;
    return new Promise((resolve) => {
      stream.pending.set(id, { resolve, expiresAt: Date.now() + this.#deadlineMs });
      this.#arm(stream);
      if (stream.batch.length >= MAX_BATCH_REQUESTS || stream.batchChars + chars > MAX_BATCH_CHARS) {
        this.#flush(stream);
      }
      stream.batch.push(request);
      stream.batchChars += chars;
      if (!stream.flushQueued) {
        stream.flushQueued = true;
        queueMicrotask(() => {
          stream.flushQueued = false;
          this.#flush(stream);
        });
      }
    });
  }

  #flush(link: Link): void {
    if (link.done || link.batch.length === 0) return;
    const batch: DeliverBatch = { requests: link.batch };
    link.batch = [];
    link.batchChars = 0;
    // A full send buffer only queues in memory; maxInFlight and the deadline bound it.
    if (link.call) link.call.write(batch);
    else link.backlog.push(batch);
  }

  /** Serves `edgeId` on this process's server, started by the first call and shared by later ones. */
  async listen(edgeId: string, receiver: DeliveryReceiver): Promise<DeliveryEndpoint> {
    if (this.#closed) throw new Error('delivery: listen() after close()');
    // Two receivers for one edge id would be a wiring mistake that silently steals sessions.
    if (this.#receivers.has(edgeId)) throw new Error(`delivery: edge ${edgeId} already has a receiver`);
    this.#receivers.set(edgeId, receiver);
    try {
      await (this.#server ??= this.#startServer());
    } catch (err) {
      this.#server = undefined;
      if (this.#receivers.get(edgeId) === receiver) this.#receivers.delete(edgeId);
      throw err;
    }
    return {
      address: this.address(),
      close: () => {
        if (this.#receivers.get(edgeId) === receiver) this.#receivers.delete(edgeId);
        return Promise.resolve();
      },
    };
  }

  /**
   * Stops taking deliveries, lets the edges answer what is in flight (bounded by the deadline), then
   * ends the streams; as an edge, answers what its receivers hold, ends the streams it serves and
   * shuts the server down (forcibly after the deadline).
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#shutdown());
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#closeLinks(), this.#stopServer()]);
    this.#receivers.clear();
  }

  // ---- caller side ----

  #open(edge: EdgeState): Link {
    const link: Link = {
      edge,
      call: undefined,
      batch: [],
      batchChars: 0,
      flushQueued: false,
      backlog: [],
      pending: new Map(),
      established: false,
      done: false,
      timer: undefined,
      nextId: 0,
      idle: undefined,
    };
    edge.link = link;
    void this.#connect(link);
    return link;
  }

  /** Resolves the edge's address and starts the call; never rejects (a failure fails the link). */
  async #connect(link: Link): Promise<void> {
    const { edge } = link;
    let address: string | undefined;
    try {
      address = await this.#resolve(edge.edgeId);
    } catch (err) {
      this.#log?.warn({ err, edgeId: edge.edgeId }, 'delivery: resolving the edge address failed');
    }
    if (link.done) return;
    if (address === undefined || address === '') {
      this.#fail(link);
      return;
    }
    try {
      if (edge.client !== undefined && edge.address !== address) {
        edge.client.close();
        edge.client = undefined;
      }
      edge.address = address;
      edge.client ??= new (loadDeliveryPackage().Delivery)(
        address,
        credentials.createInsecure(),
        CHANNEL_OPTIONS,
      );
      const metadata = new Metadata();
      metadata.set(EDGE_ID_METADATA, edge.edgeId);
      const call = edge.client.deliver(metadata);
      link.call = call;
      call.on('metadata', () => {
        link.established = true;
        edge.failures = 0;
      });
      call.on('data', (message: DeliverResults__Output) => {
        for (const result of message.results) this.#settle(link, result.id, result.delivered);
      });
      // Every end of the call, failed or not, also arrives as 'status'.
      call.on('error', () => undefined);
      call.on('status', (end: StatusObject) => {
        if (end.code !== status.OK && !link.done) {
          this.#log?.warn(
            { edgeId: edge.edgeId, address, code: end.code, details: end.details },
            'delivery: stream to the edge failed',
          );
        }
        this.#fail(link);
      });
      for (const batch of link.backlog) call.write(batch);
      link.backlog = [];
      this.#flush(link);
      // Closing meanwhile: what was taken still goes out, and the edge answers it.
      if (this.#closed) call.end();
    } catch (err) {
      this.#log?.warn({ err, edgeId: edge.edgeId, address }, 'delivery: opening a stream to the edge failed');
      this.#fail(link);
    }
  }

  /** Ends the link: what it has not been answered resolves false; the next delivery opens a new one. */
  #fail(link: Link): void {
    if (link.done) return;
    link.done = true;
    clearTimeout(link.timer);
    const { edge } = link;
    if (edge.link === link) edge.link = undefined;
    link.call?.cancel();
    if (!link.established) {
      // The edge was never reached: pause before trying it again, on a fresh channel.
      edge.failures++;
      const pause = Math.min(this.#backoff.max, this.#backoff.initial * 2 ** (edge.failures - 1));
      edge.retryAt = Date.now() + pause * (0.8 + 0.4 * Math.random());
      edge.client?.close();
      edge.client = undefined;
      edge.address = undefined;
    }
    link.backlog = [];
    link.batch = [];
    for (const pending of link.pending.values()) pending.resolve(false);
    link.pending.clear();
    link.idle?.();
  }

  #settle(link: Link, id: number, delivered: boolean): void {
    const pending = link.pending.get(id);
    // An answer after the deadline finds nothing: the caller has already been told false.
    if (pending === undefined) return;
    link.pending.delete(id);
    pending.resolve(delivered);
    if (link.pending.size === 0) link.idle?.();
  }

  /** One timer per link, set for the oldest delivery's deadline. */
  #arm(link: Link): void {
    if (link.timer !== undefined || link.done) return;
    const oldest = link.pending.values().next();
    if (oldest.done === true) return;
    link.timer = setTimeout(() => this.#expire(link), Math.max(0, oldest.value.expiresAt - Date.now()));
  }

  #expire(link: Link): void {
    link.timer = undefined;
    const now = Date.now();
    let expired = 0;
    for (const [id, pending] of link.pending) {
      if (pending.expiresAt > now) break;
      link.pending.delete(id);
      expired++;
      pending.resolve(false);
    }
    if (expired > 0) {
      this.#log?.warn({ edgeId: link.edge.edgeId, expired }, 'delivery: the edge did not answer in time');
      // A stream the edge never even acknowledged is dead (an address that swallows packets, say).
      if (!link.established) {
        this.#fail(link);
        return;
      }
    }
    if (link.pending.size === 0) link.idle?.();
    this.#arm(link);
  }

  async #closeLinks(): Promise<void> {
    const links = [...this.#edges.values()].flatMap((edge) => (edge.link ? [edge.link] : []));
    await Promise.all(
      links.map((link) => {
        // Half-closing tells the edge no more come; it still answers what it holds.
        this.#flush(link);
        if (!link.done) link.call?.end();
        if (link.done || link.pending.size === 0) return Promise.resolve();
        return new Promise<void>((resolve) => (link.idle = resolve));
      }),
    );
    for (const link of links) this.#fail(link);
    for (const edge of this.#edges.values()) edge.client?.close();
    this.#edges.clear();
  }

  // ---- edge side ----

  async #startServer(): Promise<Server> {
    const server = new Server(SERVER_OPTIONS);
    const handlers: DeliveryHandlers = { Deliver: (call) => this.#serve(call) };
    server.addService(loadDeliveryPackage().Delivery.service, handlers);
    try {
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(this.#listenAddress, ServerCredentials.createInsecure(), (err, bound) =>
          err ? reject(err) : resolve(bound),
        ),
      );
      this.#address = advertised(this.#listenAddress, this.#advertiseHost, port);
      return server;
    } catch (err) {
      server.forceShutdown();
      throw err;
    }
  }

  #serve(call: ServerDuplexStream<DeliverBatch__Output, DeliverResults>): void {
    const edgeId = call.metadata.get(EDGE_ID_METADATA)[0];
    if (typeof edgeId !== 'string') {
      call.emit('error', { code: status.INVALID_ARGUMENT, details: `${EDGE_ID_METADATA} metadata missing` });
      return;
    }
    const served: Served = {
      call,
      edgeId,
      answers: [],
      inFlight: 0,
      inputEnded: false,
      draining: this.#draining,
      ended: false,
    };
    this.#served.add(served);
    const gone = (): void => {
      served.ended = true;
      this.#served.delete(served);
    };
    call.on('cancelled', gone);
    call.on('error', (err) => {
      this.#log?.debug({ err, edgeId }, 'delivery: a served stream failed');
      gone();
    });
    call.on('data', (message: DeliverBatch__Output) => {
      for (const request of message.requests) this.#receive(served, request);
    });
    call.on('end', () => {
      served.inputEnded = true;
      this.#finish(served);
    });
    // Headers tell the caller at once that this edge serves Delivery.
    call.sendMetadata(new Metadata());
    this.#finish(served);
  }

  #receive(served: Served, request: DeliverRequest__Output): void {
    // Looked up per delivery: a listener that closed stops deliveries on streams already open.
    const receiver = served.draining ? undefined : this.#receivers.get(served.edgeId);
    const payload = toPayload(request);
    if (receiver === undefined || payload === undefined) {
      this.#answer(served, request.id, false);
      return;
    }
    served.inFlight++;
    const target: DeliveryTarget = { edgeId: served.edgeId, sessionId: request.sessionId, jid: request.jid };
    const options = { kind: SpanKind.SERVER, attributes: spanAttributes(target, payload) };
    const answer = inSpan(
      SPAN_NAME,
      options,
      async (span) => {
        // Called right away (inSpan runs this synchronously up to the await), not after the previous
        // answer: receivers see the stream's order.
        const delivered = await receiver(target, payload);
        span.setAttribute(ATTR_DELIVERED, delivered);
        return delivered;
      },
      extractTraceContext(request.trace),
    );
    void answer.then(
      (delivered) => this.#answered(served, request.id, delivered),
      (err: unknown) => this.#receiverFailed(served, request.id, err),
    );
  }

  #receiverFailed(served: Served, id: number, err: unknown): void {
    // The caller falls back (offline storage) rather than losing the stanza to an edge bug.
    this.#log?.error({ err, edgeId: served.edgeId }, 'delivery: receiver failed');
    this.#answered(served, id, false);
  }

  #answered(served: Served, id: number, delivered: boolean): void {
    served.inFlight--;
    this.#answer(served, id, delivered);
    this.#finish(served);
  }

  #answer(served: Served, id: number, delivered: boolean): void {
    if (served.ended) return;
    served.answers.push({ id, delivered });
    if (served.answers.length === 1) queueMicrotask(() => this.#sendAnswers(served));
  }

  #sendAnswers(served: Served): void {
    if (served.ended || served.answers.length === 0) return;
    served.call.write({ results: served.answers });
    served.answers = [];
  }

  /** Ends a served stream once nothing more can come (or this edge drains) and all is answered. */
  #finish(served: Served): void {
    if (served.ended || served.inFlight > 0 || !(served.inputEnded || served.draining)) return;
    this.#sendAnswers(served);
    served.ended = true;
    this.#served.delete(served);
    served.call.end();
  }

  async #stopServer(): Promise<void> {
    const starting = this.#server;
    if (starting === undefined) return;
    let server: Server;
    try {
      server = await starting;
    } catch {
      return;
    }
    this.#draining = true;
    for (const served of [...this.#served]) {
      served.draining = true;
      this.#finish(served);
    }
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.#log?.warn('delivery: receivers still busy at the deadline, shutting the server down');
        server.forceShutdown();
        resolve();
      }, this.#deadlineMs);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

/** What a delivery's spans say about it: the edge and the payload's kind, never the session's JID. */
function spanAttributes(target: DeliveryTarget, payload: DeliveryPayload): Attributes {
  return {
    [ATTR_RPC_SYSTEM]: 'grpc',
    [ATTR_RPC_SERVICE]: SERVICE,
    [ATTR_RPC_METHOD]: 'Deliver',
    [ATTR_EDGE_ID]: target.edgeId,
    [ATTR_DELIVERY_PAYLOAD]: payload.kind,
  };
}

function toRequest(
  id: number,
  target: DeliveryTarget,
  payload: DeliveryPayload,
  trace: Record<string, string>,
): DeliverRequest {
  const { sessionId, jid } = target;
  // An empty map costs nothing on the wire.
  const request: DeliverRequest = { id, sessionId, jid, trace };
  if (payload.kind === 'stanza') return { ...request, stanza: payload.xml };
  const { condition, text } = payload;
  return { ...request, close: text === undefined ? { condition } : { condition, text } };
}

function toPayload(request: DeliverRequest__Output): DeliveryPayload | undefined {
  if (request.payload === 'stanza' && request.stanza !== undefined) {
    return { kind: 'stanza', xml: request.stanza };
  }
  const close = request.close;
  if (request.payload !== 'close' || !close) return undefined;
  // Callers are Starling roles sending a StreamErrorCondition; the edge writes it as an element name.
  const condition = close.condition as StreamErrorCondition;
  return close.text === undefined
    ? { kind: 'close', condition }
    : { kind: 'close', condition, text: close.text };
}

/** host:port for the lease: an explicit advertise wins; a wildcard listen host is replaced by the host name. */
function advertised(listenAddress: string, advertiseHost: string | undefined, port: number): string {
  if (advertiseHost !== undefined && advertiseHost !== '') {
    return /:\d+$/.test(advertiseHost) ? advertiseHost : `${advertiseHost}:${port}`;
  }
  const host = listenAddress.slice(0, listenAddress.lastIndexOf(':'));
  return host === '0.0.0.0' || host === '::' || host === '[::]' ? `${hostname()}:${port}` : `${host}:${port}`;
}
