// One edge's stanzas on their way to the bus, over all its connections: a slow bus must not fill its memory.

/**
 * Counts the publishes of an edge's connections that the bus has not confirmed yet. At `limit`, every
 * connection that publishes or hears back stops reading (see ClientStream) and is told to go on once the
 * count is down to half. Each connection also has a window of its own; this bounds their sum, which with
 * thousands of connections could otherwise grow to millions of stanzas held while Kafka is slow or an
 * embedded consumer is behind.
 */
export class IngressBudget {
  readonly #limit: number;
  readonly #resumeAt: number;
  #unconfirmed = 0;
  readonly #waiting = new Set<() => void>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError('the ingress budget must be a positive integer');
    this.#limit = limit;
    this.#resumeAt = Math.floor(limit / 2);
  }

  get unconfirmed(): number {
    return this.#unconfirmed;
  }

  /** Whether connections should stop reading. */
  get exhausted(): boolean {
    return this.#unconfirmed >= this.#limit;
  }

  take(): void {
    this.#unconfirmed += 1;
  }

  give(): void {
    this.#unconfirmed -= 1;
    if (this.#waiting.size === 0 || this.#unconfirmed > this.#resumeAt) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const resume of waiting) resume();
  }

  /** Calls `resume` once, when the count is down to half the limit. */
  whenRoom(resume: () => void): void {
    this.#waiting.add(resume);
  }

  /** A connection that closed no longer waits. */
  forget(resume: () => void): void {
    this.#waiting.delete(resume);
  }
}
