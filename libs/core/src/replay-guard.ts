// Guarantee 2 of the architecture: a replayed bus record (same envelope id) is handled once.
import { BoundedMap } from '@starling/xmpp';

/** Remembers the most recent `capacity` ids; an id seen again within that window is a replay. */
export class ReplayGuard {
  readonly #seen: BoundedMap<string, true>;

  constructor(capacity: number) {
    this.#seen = new BoundedMap(capacity);
  }

  /** True the first time `id` comes (and remembers it), false for a replay. */
  admit(id: string): boolean {
    return this.#seen.add(id, true);
  }
}
