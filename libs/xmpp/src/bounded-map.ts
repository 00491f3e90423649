// A map of at most a fixed number of entries that forgets the one added longest ago, in constant time.

/**
 * At most `capacity` entries; adding a key beyond that forgets the key added longest ago. Setting a key
 * that is present replaces its value and keeps its place. A key deleted and added again may be forgotten
 * as early as its first adding would have made it: fine for a cache or a window of recent ids.
 *
 * The order is kept in a ring of keys rather than read from the Map: `map.keys().next()` walks past every
 * entry deleted since V8 last rehashed the table, so evicting the oldest that way costs time in
 * proportion to the capacity (72 µs per add at 100,000 entries, against under 1 µs with the ring).
 */
export class BoundedMap<K extends string | number | object, V> {
  readonly #entries = new Map<K, V>();
  readonly #ring: (K | undefined)[];
  #next = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError('capacity must be a positive integer');
    }
    this.#ring = new Array<K | undefined>(capacity).fill(undefined);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  set(key: K, value: V): this {
    if (!this.#entries.has(key)) this.#place(key);
    this.#entries.set(key, value);
    return this;
  }

  /** Adds `key` with `value` unless it is present (then nothing changes); true when added. */
  add(key: K, value: V): boolean {
    if (this.#entries.has(key)) return false;
    this.#place(key);
    this.#entries.set(key, value);
    return true;
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  /** Gives a new key the ring's next place, forgetting the key that held it. */
  #place(key: K): void {
    const oldest = this.#ring[this.#next];
    if (oldest !== undefined) this.#entries.delete(oldest);
    this.#ring[this.#next] = key;
    this.#next = (this.#next + 1) % this.#ring.length;
  }
}
