// SessionRegistry in memory (embedded shape): bound resources of this one process, indexed by bare JID.
import type {
  ClosedStream,
  EdgeLease,
  ResumedStream,
  SessionPatch,
  SessionRecord,
  SessionRegistry,
  StreamState,
} from '@starling/ports';

interface MutableStream {
  id: string;
  jid: string;
  sessionId: string;
  edgeId: string;
  timeoutMs: number;
  handled: number;
  acked: number;
  unacked: string[];
  /** The last stanzas queued, to take a stanza delivered twice only once. */
  recent: string[];
  detachedUntil: number | undefined;
}

const RECENT_STANZAS = 256;

function snapshot(state: MutableStream): StreamState {
  const { detachedUntil, unacked, recent: _recent, ...rest } = state;
  return Object.freeze({
    ...rest,
    unacked: Object.freeze([...unacked]),
    ...(detachedUntil === undefined ? {} : { detachedUntil }),
  });
}

/** RFC 7622 §3.1: the resourcepart starts at the first slash, so the bare JID is what precedes it. */
function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash === -1 ? jid : jid.slice(0, slash);
}

function streamKey(bare: string, id: string): string {
  return `${bare} ${id}`;
}

/**
 * Records are frozen copies, so a caller that mutates what it got back fails here instead of silently
 * changing shared state, as it would be unable to with a remote registry.
 */
function freeze(record: SessionRecord): SessionRecord {
  const copy: SessionRecord = record.directed
    ? { ...record, directed: Object.freeze([...record.directed]) }
    : { ...record };
  return Object.freeze(copy);
}

/** The embedded SessionRegistry. `resources()` costs O(resources of that bare JID). */
export class MemorySessionRegistry implements SessionRegistry {
  readonly #byJid = new Map<string, SessionRecord>();
  readonly #byBare = new Map<string, Map<string, SessionRecord>>();
  readonly #byEdge = new Map<string, Set<string>>();
  readonly #leases = new Map<string, EdgeLease>();
  /** Stream states by "<bare JID> <id>". */
  readonly #streams = new Map<string, MutableStream>();
  readonly #now: () => number;

  /** `now` is the clock leases are measured against. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  bind(record: SessionRecord): Promise<SessionRecord | undefined> {
    const replaced = this.#byJid.get(record.jid);
    if (replaced) this.#byEdge.get(replaced.edgeId)?.delete(replaced.jid);
    this.#put(freeze(record));
    return Promise.resolve(replaced);
  }

  unbind(jid: string, sessionId: string): Promise<SessionRecord | undefined> {
    const current = this.#byJid.get(jid);
    if (current?.sessionId !== sessionId) return Promise.resolve(undefined);
    this.#byJid.delete(jid);
    const bare = bareOf(jid);
    const resources = this.#byBare.get(bare);
    resources?.delete(jid);
    if (resources?.size === 0) this.#byBare.delete(bare);
    this.#byEdge.get(current.edgeId)?.delete(jid);
    return Promise.resolve(current);
  }

  restore(record: SessionRecord): Promise<boolean> {
    if (this.#byJid.has(record.jid)) return Promise.resolve(false);
    this.#put(freeze(record));
    return Promise.resolve(true);
  }

  get(jid: string): Promise<SessionRecord | undefined> {
    return Promise.resolve(this.#byJid.get(jid));
  }

  resources(bareJid: string): Promise<SessionRecord[]> {
    const resources = this.#byBare.get(bareJid);
    return Promise.resolve(resources ? [...resources.values()] : []);
  }

  update(jid: string, sessionId: string, patch: SessionPatch): Promise<SessionRecord | undefined> {
    const current = this.#byJid.get(jid);
    if (current?.sessionId !== sessionId) return Promise.resolve(undefined);
    const { presence, ...fields } = patch;
    const merged: SessionRecord = { ...current, ...fields };
    let updated: SessionRecord;
    if (presence === null) {
      const { presence: _cleared, ...rest } = merged;
      updated = freeze(rest);
    } else {
      updated = freeze(presence === undefined ? merged : { ...merged, presence });
    }
    this.#put(updated);
    return Promise.resolve(updated);
  }

  renewLease(edgeId: string, address: string, ttlMs: number): Promise<boolean> {
    const existed = this.#leases.has(edgeId);
    this.#leases.set(edgeId, Object.freeze({ edgeId, address, expiresAt: this.#now() + ttlMs }));
    return Promise.resolve(existed);
  }

  lease(edgeId: string): Promise<EdgeLease | undefined> {
    return Promise.resolve(this.#leases.get(edgeId));
  }

  expiredEdges(): Promise<string[]> {
    const now = this.#now();
    return Promise.resolve([...this.#leases.values()].filter((l) => l.expiresAt <= now).map((l) => l.edgeId));
  }

  sessionsOfEdge(edgeId: string): Promise<SessionRecord[]> {
    const jids = this.#byEdge.get(edgeId) ?? new Set<string>();
    return Promise.resolve([...jids].flatMap((jid) => this.#byJid.get(jid) ?? []));
  }

  dropEdge(edgeId: string): Promise<void> {
    this.#leases.delete(edgeId);
    return Promise.resolve();
  }

  openStream(
    jid: string,
    sessionId: string,
    id: string,
    timeoutMs: number,
    counts?: { readonly handled: number; readonly acked: number },
  ): Promise<boolean> {
    const record = this.#byJid.get(jid);
    if (record?.sessionId !== sessionId) return Promise.resolve(false);
    this.#streams.set(streamKey(bareOf(jid), id), {
      id,
      jid,
      sessionId,
      edgeId: record.edgeId,
      timeoutMs,
      handled: counts?.handled ?? 0,
      acked: counts?.acked ?? 0,
      unacked: [],
      recent: [],
      detachedUntil: undefined,
    });
    this.#put(freeze({ ...record, stream: id }));
    return Promise.resolve(true);
  }

  streamHandled(jid: string, id: string, sessionId: string, handled: number): Promise<boolean> {
    const state = this.#held(jid, id, sessionId);
    if (state) state.handled = Math.max(state.handled, handled);
    return Promise.resolve(state !== undefined);
  }

  streamPush(jid: string, id: string, sessionId: string, xml: string): Promise<number | undefined> {
    const state = this.#held(jid, id, sessionId);
    if (!state) return Promise.resolve(undefined);
    if (state.recent.includes(xml)) return Promise.resolve(0);
    state.recent.push(xml);
    if (state.recent.length > RECENT_STANZAS) state.recent.shift();
    state.unacked.push(xml);
    return Promise.resolve(state.acked + state.unacked.length);
  }

  streamQueued(
    jid: string,
    id: string,
    sessionId: string,
    after: number,
  ): Promise<{ readonly sent: number; readonly stanzas: readonly string[] } | undefined> {
    const state = this.#held(jid, id, sessionId);
    if (!state) return Promise.resolve(undefined);
    const stanzas = state.unacked.slice(Math.max(0, after - state.acked));
    return Promise.resolve({ sent: state.acked + state.unacked.length, stanzas });
  }

  streamAck(
    jid: string,
    id: string,
    sessionId: string,
    h: number,
  ): Promise<{ readonly ok: boolean; readonly sent: number } | undefined> {
    const state = this.#held(jid, id, sessionId);
    if (!state) return Promise.resolve(undefined);
    const sent = state.acked + state.unacked.length;
    if (h > sent) return Promise.resolve({ ok: false, sent });
    if (h > state.acked) {
      state.unacked.splice(0, h - state.acked);
      state.acked = h;
    }
    return Promise.resolve({ ok: true, sent });
  }

  detachStream(jid: string, id: string, sessionId: string): Promise<boolean> {
    const state = this.#held(jid, id, sessionId);
    if (state) state.detachedUntil = this.#now() + state.timeoutMs;
    return Promise.resolve(state !== undefined);
  }

  resumeStream(
    bareJid: string,
    id: string,
    sessionId: string,
    edgeId: string,
  ): Promise<ResumedStream | undefined> {
    const state = this.#streams.get(streamKey(bareJid, id));
    const record = state && this.#byJid.get(state.jid);
    if (!state || record?.sessionId !== state.sessionId) return Promise.resolve(undefined);
    const previous = { sessionId: state.sessionId, edgeId: state.edgeId };
    state.sessionId = sessionId;
    state.edgeId = edgeId;
    state.detachedUntil = undefined;
    this.#byEdge.get(record.edgeId)?.delete(record.jid);
    this.#put(freeze({ ...record, sessionId, edgeId }));
    return Promise.resolve({ state: snapshot(state), previous });
  }

  expiredStreams(): Promise<{ readonly jid: string; readonly id: string }[]> {
    const now = this.#now();
    return Promise.resolve(
      [...this.#streams.values()]
        .filter((s) => s.detachedUntil !== undefined && s.detachedUntil <= now)
        .map((s) => ({ jid: s.jid, id: s.id })),
    );
  }

  async closeStream(jid: string, id: string, sessionId?: string): Promise<ClosedStream | undefined> {
    const key = streamKey(bareOf(jid), id);
    const state = this.#streams.get(key);
    if (!state || state.jid !== jid) return undefined;
    if (sessionId === undefined) {
      if (state.detachedUntil === undefined || state.detachedUntil > this.#now()) return undefined;
    } else if (state.sessionId !== sessionId) {
      return undefined;
    }
    this.#streams.delete(key);
    const record = await this.unbind(jid, state.sessionId);
    return record ? { record, unacked: state.unacked } : { unacked: state.unacked };
  }

  close(): Promise<void> {
    this.#streams.clear();
    this.#byJid.clear();
    this.#byBare.clear();
    this.#byEdge.clear();
    this.#leases.clear();
    return Promise.resolve();
  }

  #held(jid: string, id: string, sessionId: string): MutableStream | undefined {
    const state = this.#streams.get(streamKey(bareOf(jid), id));
    return state?.jid === jid && state.sessionId === sessionId ? state : undefined;
  }

  #put(record: SessionRecord): void {
    this.#byJid.set(record.jid, record);
    const bare = bareOf(record.jid);
    let resources = this.#byBare.get(bare);
    if (!resources) {
      resources = new Map();
      this.#byBare.set(bare, resources);
    }
    resources.set(record.jid, record);
    let edge = this.#byEdge.get(record.edgeId);
    if (!edge) {
      edge = new Set();
      this.#byEdge.set(record.edgeId, edge);
    }
    edge.add(record.jid);
  }
}
