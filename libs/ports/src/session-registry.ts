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
}

/** Fields that router and presence may change; each is written independently (no lost updates). */
export type SessionPatch = Partial<
  Pick<SessionRecord, 'priority' | 'available' | 'interested' | 'blocklistRequested' | 'directed'>
> & {
  /** The new last available presence; `null` removes it (the session went unavailable). */
  readonly presence?: string | null;
};

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
  get(jid: string): Promise<SessionRecord | undefined>;
  /** Every session of a bare JID, in one round trip. */
  resources(bareJid: string): Promise<SessionRecord[]>;
  /** Applies `patch` if `jid` is still bound to `sessionId`; returns the updated record. */
  update(jid: string, sessionId: string, patch: SessionPatch): Promise<SessionRecord | undefined>;
  /** Creates or extends `edgeId`'s lease to `ttlMs` from now; an edge renews well before it runs out. */
  renewLease(edgeId: string, address: string, ttlMs: number): Promise<void>;
  /** The lease of `edgeId`, expired or not, until it is dropped. */
  lease(edgeId: string): Promise<EdgeLease | undefined>;
  /** Edges whose lease ran out and that were not dropped yet: their sessions are to be swept. */
  expiredEdges(): Promise<string[]>;
  /** Every session bound on `edgeId`. */
  sessionsOfEdge(edgeId: string): Promise<SessionRecord[]>;
  /** Forgets an edge's lease once its sessions were swept (or it shut down cleanly). */
  dropEdge(edgeId: string): Promise<void>;
  close(): Promise<void>;
}
