// Port contract suites: utilities that let the suites wait on events rather than on the clock.
import { randomBytes } from 'node:crypto';

/**
 * Resolves once `predicate` holds, checking it again every few milliseconds; rejects after `timeoutMs`.
 * The timeout only bounds a failing test: a passing adapter never depends on it.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise with its settle functions exposed, to hold a handler until the test releases it. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * `prefix` plus a random suffix. The suites run against shared backends (one database, one Kafka
 * cluster), so every test names its own users, topics, groups and edges.
 */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/**
 * Lets a few turns of the event loop pass. Used only to give a wrong adapter the chance to do what it
 * must not (resolve early, deliver late), never to wait for something a correct adapter does.
 */
export async function yieldTurns(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}
