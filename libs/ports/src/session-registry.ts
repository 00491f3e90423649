// SessionRegistry port: which session is bound to which full JID, on which edge, in what presence state.

/** A bound resource (RFC 6120 §7). Written by the edge at bind time, updated by router and presence. */
export interface SessionRecord {
  /** Full JID, prepared. */
  readonly jid: string;
  /** Unique per stream; guards against acting on a session that was replaced meanwhile. */
  readonly sessionId: string;
  /** The edge that holds the stream; Delivery's address. */
  readonly edgeId: string;
  /** Milliseconds since the epoch. */
  readonly boundAt: number;
  /** Presence priority (RFC 6121 §4.7.2.3); 0 until the first presence. */
  readonly priority: number;
  /** Initial presence sent and no unavailable since (an "available resource", RFC 6121 §1.4). */
  readonly available: boolean;
  /** Requested the roster (an "interested resource", RFC 6121 §1.4). */
  readonly interested: boolean;
  /** Requested the blocklist, so it receives blocklist pushes (XEP-0191 §3.3). */
  readonly blocklistRequested?: boolean;
  /** The last broadcast available presence, serialized, answered to probes. */
  readonly presence?: string;
  /** Full or bare JIDs this session sent directed presence to (RFC 6121 §4.6), to be told when it goes. */
  readonly directed?: readonly string[];
  /** The XEP-0198 stream id when stream management is enabled: undelivered stanzas go to its queue. */
  readonly stream?: string;
}

/** Fields that router and presence may change; each is written independently (no lost updates). */
export type SessionPatch = Partial<
  Pick<SessionRecord, 'priority' | 'available' | 'interested' | 'blocklistRequested' | 'directed'>
> & {
  /** The new last available presence; `null` removes it (the session went unavailable). */
  readonly presence?: string | null;
};

/**
 * XEP-0198 state of one stream-managed session, kept in the registry so that any edge can resume it,
 * including after the edge that held it died (ARCHITECTURE guarantee 5).
 */
export interface StreamState {
  /** The stream id (`previd` when resuming). */
  readonly id: string;
  /** Full JID of the session. */
  readonly jid: string;
  /** The session (client stream) that holds the state now. */
  readonly sessionId: string;
  readonly edgeId: string;
  /** How long the state outlives a detached stream, in milliseconds. */
  readonly timeoutMs: number;
  /** Stanzas from the client the server has handled: the server's `h`. */
  readonly handled: number;
  /** Stanzas to the client it acknowledged: the client's last `h`. */
  readonly acked: number;
  /** Stanzas to the client not yet acknowledged, oldest first; the first is number `acked + 1`. */
  readonly unacked: readonly string[];
  /** While no stream is attached: when the state expires (ms since the epoch, registry clock). */
  readonly detachedUntil?: number;
}

/** What `resumeStream` hands the resuming edge. */
export interface ResumedStream {
  /** The state as it is now held by the resuming session. */
  readonly state: StreamState;
  /** The session that held it before, to be closed if its edge still has it. */
  readonly previous: { readonly sessionId: string; readonly edgeId: string };
}

/** What `closeStream` removed: the stanzas to re-route, and the session binding if it was still there. */
export interface ClosedStream {
  readonly record?: SessionRecord;
  readonly unacked: readonly string[];
}

/** An edge's claim to be alive (ARCHITECTURE guarantee 4), renewed by heartbeats. */
export interface EdgeLease {
  readonly edgeId: string;
  /** Where routers and presence reach the edge's Delivery endpoint (host:port), '' when embedded. */
  readonly address: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

export interface SessionRegistry {
  /**
   * Binds `record.jid` to `record`, atomically replacing any session bound to that full JID.
   * Returns the replaced record, whose holder must close it with `<conflict/>`.
   */
  bind(record: SessionRecord): Promise<SessionRecord | undefined>;
  /** Removes the binding if it still belongs to `sessionId`; returns the removed record. */
  unbind(jid: string, sessionId: string): Promise<SessionRecord | undefined>;
  /**
   * Binds `record` unless its full JID is bound to any session: how an edge puts back the sessions it
   * holds after the registry lost them. False if the JID was taken meanwhile.
   */
  restore(record: SessionRecord): Promise<boolean>;
  get(jid: string): Promise<SessionRecord | undefined>;
  /** Every session of a bare JID, in one round trip. */
  resources(bareJid: string): Promise<SessionRecord[]>;
  /** Applies `patch` if `jid` is still bound to `sessionId`; returns the updated record. */
  update(jid: string, sessionId: string, patch: SessionPatch): Promise<SessionRecord | undefined>;
  /**
   * Creates or extends `edgeId`'s lease to `ttlMs` from now; an edge renews well before it runs out.
   * Resolves false when there was no lease to extend: the first renewal, or the registry lost it (a Redis
   * restarted empty) or swept the edge, which then has to put its sessions back (`restore`).
   */
  renewLease(edgeId: string, address: string, ttlMs: number): Promise<boolean>;
  /** The lease of `edgeId`, expired or not, until it is dropped. */
  lease(edgeId: string): Promise<EdgeLease | undefined>;
  /** Edges whose lease ran out and that were not dropped yet: their sessions are to be swept. */
  expiredEdges(): Promise<string[]>;
  /** Every session bound on `edgeId`. */
  sessionsOfEdge(edgeId: string): Promise<SessionRecord[]>;
  /** Forgets an edge's lease once its sessions were swept (or it shut down cleanly). */
  dropEdge(edgeId: string): Promise<void>;

  // XEP-0198 stream management. Every call that names a `sessionId` acts only while that session holds
  // the stream state, so a stream that was resumed elsewhere can no longer touch it.

  /**
   * Creates stream state `id` for the session bound to `jid` (and sets its record's `stream`), counting
   * from zero or, when an edge restores a stream the registry lost, from `counts`.
   */
  openStream(
    jid: string,
    sessionId: string,
    id: string,
    timeoutMs: number,
    counts?: { readonly handled: number; readonly acked: number },
  ): Promise<boolean>;
  /** Raises the handled count to `handled` (never lowers it). */
  streamHandled(jid: string, id: string, sessionId: string, handled: number): Promise<boolean>;
  /**
   * Queues a stanza to the client; returns its number (acked + queue length), undefined if `sessionId`
   * does not hold the state, or 0 if this very stanza was queued recently (a delivery retried after an
   * answer was lost): it is not queued twice, and must not be written twice.
   */
  streamPush(jid: string, id: string, sessionId: string, xml: string): Promise<number | undefined>;
  /**
   * The stanzas queued after number `after` (those still unacknowledged), in order, and the number of the
   * last one queued; undefined when `sessionId` does not hold the state. How a stream finds what was
   * queued for it but not by it (a router that queued a stanza itself when its delivery failed) to write it.
   */
  streamQueued(
    jid: string,
    id: string,
    sessionId: string,
    after: number,
  ): Promise<{ readonly sent: number; readonly stanzas: readonly string[] } | undefined>;
  /**
   * Drops the stanzas numbered up to `h` from the queue. `ok` is false (and nothing changes) when `h` is
   * more than was sent (`sent`); undefined when `sessionId` does not hold the state.
   */
  streamAck(
    jid: string,
    id: string,
    sessionId: string,
    h: number,
  ): Promise<{ readonly ok: boolean; readonly sent: number } | undefined>;
  /** Marks the state detached: it expires `timeoutMs` from now unless a stream resumes it. */
  detachStream(jid: string, id: string, sessionId: string): Promise<boolean>;
  /**
   * Hands stream `id` of `bareJid`, attached or not, to the new stream `sessionId` on `edgeId`, and
   * rebinds its full JID to that stream in the same step. Undefined if there is no such state.
   */
  resumeStream(
    bareJid: string,
    id: string,
    sessionId: string,
    edgeId: string,
  ): Promise<ResumedStream | undefined>;
  /** Detached states past their expiry. */
  expiredStreams(): Promise<{ readonly jid: string; readonly id: string }[]>;
  /**
   * Ends stream `id`: deletes its state and unbinds its session if that session still holds it. With a
   * `sessionId`, only while that session holds it; without, only once it is detached and expired.
   */
  closeStream(jid: string, id: string, sessionId?: string): Promise<ClosedStream | undefined>;
  close(): Promise<void>;
}
