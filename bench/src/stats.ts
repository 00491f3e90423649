// Latency samples and their percentiles.
export class Latencies {
  private values = new Float64Array(1024);
  private size = 0;

  add(ms: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = ms;
  }

  get count(): number {
    return this.size;
  }

  /** Undefined without samples: a run where nothing measured arrived has no latency, not one of 0 ms. */
  summary(): LatencySummary | undefined {
    if (this.size === 0) return undefined;
    const sorted = this.values.slice(0, this.size).sort();
    const at = (q: number): number => sorted[Math.min(this.size - 1, Math.floor(q * this.size))] ?? 0;
    return {
      p50: at(0.5),
      p95: at(0.95),
      p99: at(0.99),
      max: sorted[this.size - 1] ?? 0,
    };
  }
}

export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}
