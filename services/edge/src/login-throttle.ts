// Failed-login throttling per remote address: growing delays, then a temporary block (bounded memory).

export interface LoginThrottlePolicy {
  readonly failuresBeforeDelay: number;
  readonly failureDelayMs: number;
  readonly failuresBeforeBlock: number;
  readonly blockSeconds: number;
}

interface Entry {
  failures: number;
  /** Failures are forgotten this long after the last one; a block lasts until then too. */
  expiresAt: number;
  blocked: boolean;
}

/** Remembered addresses; the oldest are forgotten first past this many. */
const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * Counts failed logins per address. Past `failuresBeforeDelay` each failure answer waits
 * `failureDelayMs × (failures − threshold)`; at `failuresBeforeBlock` the address is refused for `blockSeconds`.
 */
export class LoginThrottle {
  private readonly policy: LoginThrottlePolicy;
  private readonly now: () => number;
  private readonly maxEntries: number;
  /** Map order is least recently touched first, which makes eviction O(1). */
  private readonly entries = new Map<string, Entry>();

  constructor(policy: LoginThrottlePolicy, now: () => number = Date.now, maxEntries = DEFAULT_MAX_ENTRIES) {
    this.policy = policy;
    this.now = now;
    this.maxEntries = maxEntries;
  }

  /** Milliseconds the address stays blocked; 0 when it may try. */
  blockedFor(address: string): number {
    const entry = this.live(address);
    return entry?.blocked === true ? entry.expiresAt - this.now() : 0;
  }

  /** Records a failure; returns how long to wait before answering it. */
  recordFailure(address: string): number {
    const now = this.now();
    const entry = this.live(address) ?? { failures: 0, expiresAt: 0, blocked: false };
    entry.failures += 1;
    entry.expiresAt = now + this.policy.blockSeconds * 1000;
    if (entry.failures >= this.policy.failuresBeforeBlock) entry.blocked = true;
    this.entries.delete(address);
    this.entries.set(address, entry);
    this.evict();
    const over = entry.failures - this.policy.failuresBeforeDelay;
    return over <= 0 ? 0 : over * this.policy.failureDelayMs;
  }

  /** A successful login clears the address's record. */
  recordSuccess(address: string): void {
    this.entries.delete(address);
  }

  get size(): number {
    return this.entries.size;
  }

  private live(address: string): Entry | undefined {
    const entry = this.entries.get(address);
    if (entry !== undefined && entry.expiresAt <= this.now()) {
      this.entries.delete(address);
      return undefined;
    }
    return entry;
  }

  private evict(): void {
    for (const address of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) return;
      this.entries.delete(address);
    }
  }
}
