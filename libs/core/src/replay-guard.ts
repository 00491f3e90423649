// Guarantee 2 of the architecture: a replayed bus record (same envelope id) is handled once.

/** Remembers the most recent `capacity` ids; an id seen again within that window is a replay. */
export class ReplayGuard {
  readonly #capacity: number;
  readonly #seen = new Set<string>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.#capacity = capacity;
  }

  /** True the first time `id` comes (and remembers it), false for a replay. */
  admit(id: string): boolean {
    if (this.#seen.has(id)) return false;
    this.#seen.add(id);
    if (this.#seen.size > this.#capacity) {
      // A Set iterates in insertion order, so the first entry is the oldest.
      const oldest = this.#seen.values().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    return true;
  }
}
