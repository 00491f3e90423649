// The embedded archive in a thread of its own, seen from the server's thread: each call is a message to
// archive-worker.ts, settled by its answer. The thread starts with the first call, so a store that never
// touches the archive (a CLI command) starts none.
import { Worker } from 'node:worker_threads';
import type { ArchiveEntry } from '@starling/ports';
import type { SeparateArchive } from './sql-store.ts';
import type { ArchiveReply, ArchiveRequest, ArchiveThreadOptions, StagedRow } from './archive-worker.ts';

export type { ArchiveThreadOptions } from './archive-worker.ts';

export interface ArchiveThread extends SeparateArchive {
  /**
   * Copies the `archive` table of the SQLite file `file` (a store made when the archive was kept there),
   * rows copied before left as they are; answers how many were copied.
   */
  importFrom(file: string): Promise<number>;
}

/** What the thread tells besides its answers: for metrics and logs. */
export interface ArchiveObserver {
  /** The rows staged and not yet moved into the indexed archive, after each call and each move. */
  staged?(rows: number): void;
  /** A move failed; its rows stay staged for the next one. */
  moveFailed?(error: string): void;
  /** The thread's heap in bytes, used and its limit, after each move. */
  heap?(used: number, limit: number): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** A promise with its settling functions. */
function hold(): { promise: Promise<void>; settle: Pending } {
  let settle: Pending | undefined;
  const promise = new Promise<void>((resolve, reject) => {
    settle = { resolve: () => resolve(), reject };
  });
  return { promise, settle: settle as Pending };
}

const ENTRY = new URL('./archive-worker-entry.js', import.meta.url);
/**
 * Appends wait this long for company before they go to the thread as one message: each message costs
 * both threads about as much as a few rows do, and is one commit synced to disk (about 1 ms of CPU, mostly
 * the kernel's). An archive write is off the delivery path, and a query still comes after every append
 * made before it (`call`). Like a record on the in-process bus, an append gathered here is lost if the
 * process dies before it is handed over. 100 ms rather than 20 took a sixth off the thread's CPU in chat
 * at 2,500 msg/s (docs/benchmarks.md).
 */
const GATHER_MS = 100;
/** Rows that go to the thread at once, without waiting for GATHER_MS. */
const GATHER_ROWS = 512;
/**
 * Rows in the largest call the thread gets: the archive role's write batcher hands over what its handlers
 * in flight wrote (up to 1,024 of them); appends gathered here go at GATHER_ROWS.
 */
const LARGEST_CALL_ROWS = 1024;
/** The least heap the thread gets: what `archiveHeapMb` gives at the default stanza size limit, 256 KiB. */
const LEAST_HEAP_MB = 1024;

/**
 * The thread's heap for stanzas of up to `stanzaBytes` (`limits.stanzaBytes`): room for the largest call
 * (LARGEST_CALL_ROWS stanzas of the limit's size, which a string may take twice in memory) twice over, since
 * the thread holds a call's rows while it stages them; never less than LEAST_HEAP_MB.
 */
export function archiveHeapMb(stanzaBytes: number): number {
  return Math.max(LEAST_HEAP_MB, Math.ceil((2 * 2 * LARGEST_CALL_ROWS * stanzaBytes) / 2 ** 20));
}

/** The archive in `options.file`, kept by a thread that starts with the first call. */
export function openArchiveThread(
  options: ArchiveThreadOptions,
  observer: ArchiveObserver = {},
): ArchiveThread {
  let worker: Worker | undefined;
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let closed = false;
  let closing: Promise<void> | undefined;

  function start(): Worker {
    const started = new Worker(ENTRY, {
      workerData: options,
      resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? LEAST_HEAP_MB },
    });
    let failure: Error | undefined;
    started.on('message', (reply: ArchiveReply) => {
      observer.staged?.(reply.staged);
      if ('moved' in reply) {
        observer.heap?.(reply.heap.used, reply.heap.limit);
        if (reply.error !== undefined) observer.moveFailed?.(reply.error);
        return;
      }
      const call = pending.get(reply.id);
      if (call === undefined) return;
      pending.delete(reply.id);
      // An idle thread does not keep the process alive; one with calls under way does.
      if (pending.size === 0) started.unref();
      if ('error' in reply) call.reject(new Error(`archive: ${reply.error}`));
      else call.resolve(reply.value);
    });
    started.on('error', (err) => {
      failure = err;
    });
    started.on('exit', (code) => {
      if (worker === started) worker = undefined;
      const reason = new Error(
        `archive: its thread stopped (exit code ${code})${failure ? `: ${failure.message}` : ''}`,
        { cause: failure },
      );
      for (const call of pending.values()) call.reject(reason);
      pending.clear();
    });
    return started;
  }

  let gathered: StagedRow[] = [];
  /** What every append gathered since the last hand-over waits on: one promise for them all. */
  let waiting: { promise: Promise<void>; settle: Pending } | undefined;
  let gathering: NodeJS.Timeout | undefined;

  /** Hands the rows just gathered over with those of the next GATHER_MS; settles once they are all staged. */
  function gather(): Promise<void> {
    waiting ??= hold();
    const { promise } = waiting;
    if (gathered.length >= GATHER_ROWS) sendGathered();
    else gathering ??= setTimeout(sendGathered, GATHER_MS);
    return promise;
  }

  /** Sends what was gathered: also before any other call, so the thread sees calls in the order made. */
  function sendGathered(): void {
    clearTimeout(gathering);
    gathering = undefined;
    if (waiting === undefined) return;
    const { settle } = waiting;
    const rows = gathered;
    gathered = [];
    waiting = undefined;
    send({ op: 'append', rows }).then(
      () => settle.resolve(undefined),
      (err: unknown) => settle.reject(err instanceof Error ? err : new Error(String(err))),
    );
  }

  function call(request: ArchiveRequest): Promise<unknown> {
    sendGathered();
    return send(request);
  }

  function send(request: ArchiveRequest): Promise<unknown> {
    if (closed) return Promise.reject(new Error('archive: the store is closed'));
    worker ??= start();
    const id = (nextId += 1);
    const to = worker;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      if (pending.size === 1) to.ref();
      to.postMessage({ ...request, id });
    });
  }

  const row = (username: string, entry: ArchiveEntry): StagedRow => [
    username,
    entry.id,
    entry.with,
    entry.ts,
    entry.direction,
    entry.stanza,
  ];

  return {
    append(username, entry) {
      gathered.push(row(username, entry));
      return gather();
    },

    async appendMany(entries) {
      if (entries.length === 0) return;
      for (const { username, entry } of entries) gathered.push(row(username, entry));
      await gather();
    },

    query: (username, query) =>
      call({ op: 'query', username, query }) as ReturnType<SeparateArchive['query']>,

    async removeAll(username) {
      await call({ op: 'removeAll', username });
    },

    importFrom: (file) => call({ op: 'import', file }) as Promise<number>,

    close() {
      closing ??= (async () => {
        // Appends still gathering go first (and start the thread if they are its first call).
        sendGathered();
        const running = worker;
        if (running === undefined) {
          closed = true;
          return;
        }
        // The thread moves what it has staged and closes its file before it is stopped.
        try {
          await call({ op: 'close' });
        } finally {
          closed = true;
          await running.terminate();
        }
      })();
      return closing;
    },
  };
}
