// SessionRegistry in memory (embedded shape): bound resources of this one process, indexed by bare JID.
import type { SessionPatch, SessionRecord, SessionRegistry } from '@starling/ports';

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

  bind(record: SessionRecord): Promise<SessionRecord | undefined> {
    const replaced = this.#byJid.get(record.jid);
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

  close(): Promise<void> {
    this.#byJid.clear();
    this.#byBare.clear();
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
  }
}
