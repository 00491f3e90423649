// What the load generator needs of a server under test, whichever it is.
import type { Component } from '../proc.ts';

export interface ServerOptions {
  /** A directory of the server's own: configuration and data stay there between runs. */
  readonly dir: string;
  readonly domain: string;
  readonly host: string;
  readonly c2sPort: number;
  readonly directTlsPort: number;
  readonly httpPort: number;
  /** PEM certificate and key for `domain`, the same for every server compared. */
  readonly cert: string;
  readonly key: string;
  /** Pin the server to this CPU. */
  readonly cpu?: number;
  /** Write a V8 CPU profile of the server here when it stops (Node servers only). */
  readonly profileDir?: string;
}

/** Where clients connect: one per edge. */
export interface Endpoint {
  readonly c2sPort: number;
  readonly directTlsPort: number;
}

export interface RunningServer {
  readonly name: string;
  /** Client user i connects to endpoint i mod the count, so users spread evenly over the edges. */
  readonly endpoints: readonly Endpoint[];
  /** Every process whose CPU and memory count as the server's. */
  readonly components: readonly Component[];
  /** Work counted by the backends (Kafka records, Redis commands, PostgreSQL rows), where there are any. */
  readonly counters?: () => Promise<Readonly<Record<string, number>>>;
  stop(): Promise<void>;
}
