// XEP-0198 Stream Management on the edge: counts, acknowledgements and the registry-held queue of one stream.
import type { SessionRegistry } from '@starling/ports';
import { NS_STANZAS, xml, type Element } from '@starling/xmpp';

export const NS_SM = 'urn:xmpp:sm:3';

/** Ask the client for an acknowledgement once this many stanzas wait for one... */
const REQUEST_AFTER_STANZAS = 5;
/** ...or this long after the first unacknowledged one. */
const REQUEST_AFTER_MS = 200;
/** Wait before writing the handled count again after the registry failed. */
const STORE_RETRY_MS = 500;
/** Refusals in a row after which a stream stops putting its state back (the registry keeps losing it). */
const MAX_REFUSALS = 3;
/**
 * A client's `<r/>` on a stream that asked nothing of the registry's queue for this long makes it look for
 * stanzas queued for it but not by it: a keepalive finds a stranded stanza, at most one look per interval.
 */
const LOOK_AFTER_MS = 30_000;

/** `<failed/>` with a stanza error condition (XEP-0198 §3, §5). */
export function smFailed(condition: string, h?: number): Element {
  return xml(
    'failed',
    { xmlns: NS_SM, ...(h === undefined ? {} : { h: String(h) }) },
    xml(condition, { xmlns: NS_STANZAS }),
  );
}

/** Parses an `h` attribute: an unsigned 32-bit integer (XEP-0198 §4). */
export function parseH(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value)) return undefined;
  const h = Number(value);
  return h <= 0xffffffff ? h : undefined;
}

export interface ManagedStreamIo {
  /** Writes a nonza (`<r/>`, `<a/>`) to the client connection. */
  write(el: Element): void;
  /** Writes a stanza, serialized, to the client connection. */
  writeStanza(stanza: string): void;
  /** Stanzas that were queued for this stream by others (a router whose delivery failed) were written late. */
  wroteLate(count: number): void;
  /** The client's `h` said it received more than was sent: end the stream. */
  tooHigh(h: number, sent: number): void;
  /**
   * The registry refused a call for this stream: another stream took the state over (this one ends, and
   * it resolves true), or the registry lost it and it was put back (false: try again).
   */
  lost(): Promise<boolean>;
}

/**
 * The state of one managed stream as its edge sees it. Inbound, stanzas are numbered as they arrive and
 * counted handled once the bus confirmed them (or they were answered here); `h` is the longest run of
 * handled stanzas, written to the registry before any `<a/>` announces it. Outbound, each stanza goes to
 * the registry's queue before it is written, so a stream whose edge died can be resumed with nothing lost.
 */
export class ManagedStream {
  readonly id: string;
  readonly resumable: boolean;
  /** The resumption window, in milliseconds. */
  readonly timeoutMs: number;
  private readonly registry: SessionRegistry;
  private readonly jid: string;
  private readonly sessionId: string;
  private readonly io: ManagedStreamIo;
  private received: number;
  private handled: number;
  private readonly done = new Set<number>();
  private stored: number;
  private storing: Promise<void> | undefined;
  /** `<r/>`s waiting for the handled count to be stored: how many asked, per count (one entry each). */
  private readonly ackWaiters: { readonly h: number; asked: number }[] = [];
  /** Stanzas queued for the client so far (acked + queue length), and the client's last `h`. */
  private sent: number;
  private acked: number;
  private requested = false;
  private requestTimer: NodeJS.Timeout | undefined;
  /** Outbound stanzas go through one chain, so they are queued and written in the order they came. */
  private outbound: Promise<unknown>;
  /** When this stream last learned the queue's length from the registry (`Date.now()`). */
  private looked = Date.now();
  private ended = false;

  constructor(options: {
    registry: SessionRegistry;
    id: string;
    resumable: boolean;
    timeoutMs: number;
    jid: string;
    sessionId: string;
    io: ManagedStreamIo;
    handled?: number;
    acked?: number;
    sent?: number;
  }) {
    this.registry = options.registry;
    this.id = options.id;
    this.resumable = options.resumable;
    this.timeoutMs = options.timeoutMs;
    this.jid = options.jid;
    this.sessionId = options.sessionId;
    this.io = options.io;
    this.received = this.handled = this.stored = options.handled ?? 0;
    this.acked = options.acked ?? 0;
    this.sent = options.sent ?? this.acked;
    this.outbound = Promise.resolve();
  }

  /** The number of the last stanza from the client. */
  get lastReceived(): number {
    return this.received;
  }

  /** Numbers a stanza from the client; call `handle` with the number once it is handled. */
  receive(): number {
    this.received += 1;
    return this.received;
  }

  handle(seq: number): void {
    if (seq <= this.handled) return;
    this.done.add(seq);
    while (this.done.delete(this.handled + 1)) this.handled += 1;
    this.store();
  }

  /**
   * `<r/>`: answers `<a/>` once everything received so far is handled and its count stored. On a stream
   * that wrote nothing for a while, also looks for stanzas queued for it but not by it.
   */
  requestAck(): void {
    if (Date.now() - this.looked >= LOOK_AFTER_MS) this.lookForQueued();
    const h = this.received;
    if (this.stored >= h) return this.answer(h, 1);
    const last = this.ackWaiters[this.ackWaiters.length - 1];
    if (last?.h === h) last.asked += 1;
    else this.ackWaiters.push({ h, asked: 1 });
  }

  private answer(h: number, times: number): void {
    if (this.ended) return;
    for (let i = 0; i < times; i++) this.io.write(xml('a', { xmlns: NS_SM, h: String(h) }));
  }

  /** `<a h/>` from the client. */
  async ack(h: number): Promise<void> {
    this.requested = false;
    let result = await this.registry.streamAck(this.jid, this.id, this.sessionId, h);
    if (result === undefined && !(await this.io.lost())) {
      result = await this.registry.streamAck(this.jid, this.id, this.sessionId, h);
    }
    if (result === undefined) return;
    if (!result.ok) return this.io.tooHigh(h, result.sent);
    this.looked = Date.now();
    this.acked = Math.max(this.acked, h);
    // More queued than this stream wrote: stanzas of its own still on their way to the registry, or ones a
    // router queued for it when its delivery failed, which no later stanza of this stream may come to carry.
    if (result.sent > this.sent) this.lookForQueued(result.sent);
    this.scheduleRequest();
  }

  /**
   * Behind the stanzas being queued, writes what is queued past what this stream wrote; with `seen` (a
   * queue length the registry reported), only if this stream's own stanzas do not account for it.
   */
  private lookForQueued(seen?: number): void {
    this.looked = Date.now();
    const result = this.outbound.then(() =>
      this.ended || (seen !== undefined && seen <= this.sent) ? true : this.catchUp(false),
    );
    this.outbound = result.catch(() => false);
  }

  /**
   * Queues a stanza in the registry, then writes it; false if this stream no longer holds the state or the
   * registry could not take it (the caller falls back: a router to its own queueing or offline storage).
   * Never rejects.
   */
  send(stanza: string): Promise<boolean> {
    const result = this.outbound.then(() => this.queueAndWrite(stanza)).catch(() => false);
    this.outbound = result;
    return result;
  }

  private async queueAndWrite(stanza: string): Promise<boolean> {
    if (this.ended) return false;
    let number = await this.registry.streamPush(this.jid, this.id, this.sessionId, stanza);
    if (number === undefined && !(await this.io.lost())) {
      number = await this.registry.streamPush(this.jid, this.id, this.sessionId, stanza);
    }
    if (number === undefined) return false;
    this.looked = Date.now();
    // Anything else than the next number: stanzas were queued for this stream but not by it (a router
    // whose delivery here failed, on a deadline or a broken connection, queues the stanza itself), or this
    // very one was (by such a router, or by this stream when a router retried a delivery whose answer it
    // missed). Whatever is queued past what this stream wrote goes out now, in order, so that the client's
    // count stays the queue's.
    if (number !== this.sent + 1) return this.catchUp(true);
    this.sent = number;
    if (this.hasEnded()) return true; // queued: a resumption or the end of the stream takes it from here
    this.io.writeStanza(stanza);
    this.scheduleRequest();
    return true;
  }

  /**
   * Writes the stanzas queued past `sent`; true, since the stanza being sent (`sending`) is among them or
   * written. Those queued by others are counted late.
   */
  private async catchUp(sending: boolean): Promise<boolean> {
    const queued = await this.registry.streamQueued(this.jid, this.id, this.sessionId, this.sent);
    // Not held any more: what is queued goes out with the resumption, or is routed again at the end.
    if (queued === undefined || queued.sent <= this.sent) return true;
    const late = queued.sent - this.sent - (sending ? 1 : 0);
    this.sent = queued.sent;
    if (this.hasEnded()) return true;
    for (const stanza of queued.stanzas) this.io.writeStanza(stanza);
    if (late > 0) this.io.wroteLate(late);
    this.scheduleRequest();
    return true;
  }

  /**
   * The counts to open the state with again after the registry lost it: what was handled and stored, and
   * everything written counted as acknowledged, since the queue of what was not is gone with the registry.
   */
  restoredCounts(): { handled: number; acked: number } {
    return { handled: this.stored, acked: this.sent };
  }

  /** After a resumption wrote the unacknowledged stanzas again: asks for their acknowledgement. */
  resent(): void {
    this.scheduleRequest();
  }

  /** Waits for the stanzas being queued. */
  async settled(): Promise<void> {
    await this.outbound;
    // Each pass waits for a running write; `store` starts the next one only if there is more to write.
    while (this.storing !== undefined) await this.storing;
  }

  /** A method, so that a check after an await is not narrowed away by one before it. */
  private hasEnded(): boolean {
    return this.ended;
  }

  end(): void {
    this.ended = true;
    clearTimeout(this.requestTimer);
  }

  private scheduleRequest(): void {
    const waiting = this.sent - this.acked;
    if (this.ended || this.requested || waiting <= 0) return;
    if (waiting >= REQUEST_AFTER_STANZAS) {
      this.sendRequest();
      return;
    }
    this.requestTimer ??= setTimeout(() => {
      this.requestTimer = undefined;
      if (!this.requested && this.sent > this.acked) this.sendRequest();
    }, REQUEST_AFTER_MS);
  }

  private sendRequest(): void {
    clearTimeout(this.requestTimer);
    this.requestTimer = undefined;
    this.requested = true;
    this.io.write(xml('r', { xmlns: NS_SM }));
  }

  /** Writes the handled count; one write at a time, the latest value each time. */
  private store(): void {
    if (this.storing !== undefined || this.handled <= this.stored) return;
    this.storing = this.storeLoop().finally(() => {
      this.storing = undefined;
      this.store();
    });
  }

  private async storeLoop(): Promise<void> {
    let refusals = 0;
    while (this.handled > this.stored) {
      const h = this.handled;
      let held: boolean;
      try {
        held = await this.registry.streamHandled(this.jid, this.id, this.sessionId, h);
      } catch {
        // `<a/>` waits until a write succeeds; the registry's client reconnects meanwhile. A stream that
        // ended stops trying: its end must not wait for the registry to come back.
        if (this.ended) return;
        await new Promise((resolve) => setTimeout(resolve, STORE_RETRY_MS));
        continue;
      }
      // Not held: put back (try again, a few times at most), or taken over (this stream is ending).
      if (!held) {
        refusals += 1;
        if (refusals > MAX_REFUSALS || (await this.io.lost())) return;
        continue;
      }
      refusals = 0;
      this.stored = h;
      for (let next = this.ackWaiters[0]; next !== undefined && next.h <= h; next = this.ackWaiters[0]) {
        this.ackWaiters.shift();
        this.answer(next.h, next.asked);
      }
    }
  }
}
