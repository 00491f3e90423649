// SessionRegistry in memory (embedded shape): bound resources of this one process, indexed by bare JID.
import type { EdgeLease, SessionPatch, SessionRecord, SessionRegistry } from '@starling/ports';

/** RFC 7622 §3.1: the resourcepart starts at the first slash, so the bare JID is what precedes it. */
function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash === -1 ? jid : jid.slice(0, slash);
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

  renewLease(edgeId: string, address: string, ttlMs: number): Promise<void> {
    this.#leases.set(edgeId, Object.freeze({ edgeId, address, expiresAt: this.#now() + ttlMs }));
    return Promise.resolve();
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

  close(): Promise<void> {
    this.#byJid.clear();
    this.#byBare.clear();
    this.#byEdge.clear();
    this.#leases.clear();
    return Promise.resolve();
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
