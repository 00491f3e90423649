// Replay suppression: the bus may hand a record over again after a restart or rebalance (at-least-once).

/** The most recent `capacity` ids, oldest forgotten first. */
export class RecentIds {
  private readonly ids = new Set<string>();
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Remembers `id`; true if it was already remembered. */
  seen(id: string): boolean {
    if (this.ids.has(id)) return true;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next();
      if (oldest.done !== true) this.ids.delete(oldest.value);
    }
    return false;
  }
}
