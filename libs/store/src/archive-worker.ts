// The embedded archive's thread: it owns the connection to the archive's file and does every archive read
// and write off the server's event loop. Appends land in `archive_staged`, which has no index, so each
// costs a write at the table's end; they are moved into the indexed `archive` in large batches, sorted
// into place at a fraction of the cost per row of adding each to the indexes as it comes. Rows wait staged
// until MOVE_ROWS have come or QUIET_MS pass without an append; a query first moves the rows of its
// owner, so it sees every append that settled before it, and a removal deletes them with the archived
// ones. The thread knows each staged row's owner from its append, so it finds an owner's rows without an
// index. Staged rows are stored as durably as the archive's: a thread stopped before moving them moves
// them when it starts again.
import { getPriority, setPriority } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import type { MessagePort } from 'node:worker_threads';
import { Kysely, SqliteDialect } from 'kysely';
import type { ArchiveQuery, ArchiveStore } from '@starling/ports';
import { migrateArchiveFile } from './migrations.ts';
import type { Database } from './schema.ts';
import { openSqlite, type SqliteConnection, type SqliteDriverName } from './sqlite-driver.ts';
import { createSqlArchive } from './sql-store.ts';

/** Staged rows that start a move: large enough to sort well, small enough to move in a fraction of a second. */
const MOVE_ROWS = 20_000;
/** Without an append for this long, the staged rows are moved. */
const QUIET_MS = 1000;
/** How much nicer than the server's thread the archive's thread runs. */
const ARCHIVE_NICE = 10;
const NICE_LOWEST = 19;

export interface ArchiveThreadOptions {
  /** The archive's SQLite file, or ':memory:'. */
  readonly file: string;
  readonly driver: SqliteDriverName;
  /** Staged rows that start a move (MOVE_ROWS unless set: tests set fewer). */
  readonly moveRows?: number;
  /** Milliseconds without an append after which the staged rows are moved (QUIET_MS unless set). */
  readonly quietMs?: number;
  /**
   * The thread's heap, in MB. Past it the thread stops (the calls under way fail; rows it staged are in
   * its file, and the next call starts another thread), not the server. Default 1024.
   */
  readonly maxHeapMb?: number;
}

/** One entry on its way to the thread: username, id, with, ts, direction, stanza. */
export type StagedRow = readonly [string, string, string, number, string, string];

export type ArchiveRequest =
  | { readonly op: 'append'; readonly rows: readonly StagedRow[] }
  | { readonly op: 'query'; readonly username: string; readonly query: ArchiveQuery }
  | { readonly op: 'removeAll'; readonly username: string }
  | { readonly op: 'import'; readonly file: string }
  | { readonly op: 'close' };

/**
 * The answer to a call, or word of a move no call waited for (with its error if it failed). Each carries
 * the rows left staged.
 */
export type ArchiveReply =
  | { readonly id: number; readonly value: unknown; readonly staged: number }
  | { readonly id: number; readonly error: string; readonly staged: number }
  | { readonly moved: true; readonly staged: number; readonly heap: ArchiveHeap; readonly error?: string };

/** The thread's own heap, in bytes: what it uses, and where it would stop (its `maxHeapMb` and more). */
export interface ArchiveHeap {
  readonly used: number;
  readonly limit: number;
}

function heap(): ArchiveHeap {
  const { used_heap_size: used, heap_size_limit: limit } = getHeapStatistics();
  return { used, limit };
}

const COLUMNS = 'username, id, with_jid, ts, direction, stanza';

/** The archive file, open: staged appends, moves, and the SQL archive's reads over the same connection. */
class StagedArchive {
  /** Rows staged. */
  private staged = 0;
  /** The rowids of each owner's staged rows, in arrival order: every row in `archive_staged`. */
  private readonly owners = new Map<string, number[]>();
  /**
   * The file's `data_version` when `owners` was last read from the table; this connection's own writes
   * keep it, another connection's commit changes it (a CLI removing an account while the server runs).
   * Unset when a failed transaction may have left `owners` untrue.
   */
  private version: number | undefined;
  private readonly statements: ReturnType<typeof prepareStatements>;
  private readonly sqlite: SqliteConnection;
  private readonly db: Kysely<Database>;
  private readonly archive: ArchiveStore;

  constructor(sqlite: SqliteConnection, db: Kysely<Database>, archive: ArchiveStore) {
    this.sqlite = sqlite;
    this.db = db;
    this.archive = archive;
    this.statements = prepareStatements(sqlite);
    this.refresh();
    if (this.staged > 0) this.moveAll();
  }

  get stagedRows(): number {
    return this.staged;
  }

  append(rows: readonly StagedRow[]): void {
    if (rows.length === 0) return;
    this.transaction(() => {
      for (const row of rows) this.remember(row[0], Number(this.statements.stage.run(row).lastInsertRowid));
    });
  }

  moveAll(): void {
    if (this.staged === 0) return;
    this.transaction(() => {
      // Owner by owner, in the indexes' order: each owner's entries go in beside each other.
      const rowids: number[] = [];
      for (const owner of [...this.owners.keys()].sort()) {
        for (const rowid of this.owners.get(owner) ?? []) rowids.push(rowid);
      }
      this.statements.move.run([JSON.stringify(rowids)]);
      this.statements.clearAll.run([]);
      this.owners.clear();
      this.staged = 0;
    });
  }

  /** Moves `username`'s staged rows, so that reading the archive sees them. */
  private moveOwner(username: string): void {
    if (!this.owners.has(username) && this.dataVersion() === this.version) return;
    this.transaction(() => {
      const rowids = this.owners.get(username);
      if (rowids === undefined) return;
      const listed = JSON.stringify(rowids);
      this.statements.move.run([listed]);
      this.unstage(username, listed);
    });
  }

  query(username: string, query: ArchiveQuery): Promise<unknown> {
    this.moveOwner(username);
    return this.archive.query(username, query);
  }

  /**
   * Empties `username`'s archive, staged rows included: also those another process staged, which this
   * thread reads from the table once it sees the file changed.
   */
  removeAll(username: string): void {
    this.transaction(() => {
      const rowids = this.owners.get(username);
      if (rowids !== undefined) this.unstage(username, JSON.stringify(rowids));
      this.statements.removeOwner.run([username]);
    });
  }

  /** Deletes `username`'s staged rows, whose rowids the JSON array `listed` holds. */
  private unstage(username: string, listed: string): void {
    this.statements.clearRows.run([listed]);
    this.staged -= this.owners.get(username)?.length ?? 0;
    this.owners.delete(username);
  }

  private remember(username: string, rowid: number): void {
    const rowids = this.owners.get(username);
    if (rowids === undefined) this.owners.set(username, [rowid]);
    else rowids.push(rowid);
    this.staged += 1;
  }

  private dataVersion(): number {
    const [row] = this.statements.dataVersion.all([]) as { data_version: number | bigint }[];
    return Number(row?.data_version);
  }

  /** Reads the staged rows' owners from the table again if another connection may have changed them. */
  private refresh(): void {
    const version = this.dataVersion();
    if (version === this.version) return;
    this.owners.clear();
    this.staged = 0;
    for (const row of this.statements.stagedOwners.all([]) as {
      rowid: number | bigint;
      username: string;
    }[]) {
      this.remember(row.username, Number(row.rowid));
    }
    this.version = version;
  }

  /**
   * Copies the `archive` table of another SQLite file (a store made before the archive had a file of its
   * own) with each row's place in the order; rows copied before are left as they are. Answers how many
   * were copied.
   */
  importFrom(file: string): number {
    this.moveAll();
    this.sqlite.prepare('ATTACH DATABASE ? AS source').run([file]);
    try {
      let copied = 0;
      this.transaction(() => {
        const result = this.sqlite
          .prepare(
            `INSERT INTO archive (seq, ${COLUMNS}) SELECT seq, ${COLUMNS} FROM source.archive ` +
              'WHERE true ORDER BY seq ON CONFLICT DO NOTHING',
          )
          .run([]);
        copied = Number(result.changes);
      });
      return copied;
    } finally {
      this.sqlite.prepare('DETACH DATABASE source').run([]);
    }
  }

  async close(): Promise<void> {
    this.moveAll();
    await this.db.destroy();
  }

  /**
   * Runs `work` in a write transaction, with `owners` true to the table: no other connection writes
   * until it ends. A failure rolls the table back but perhaps not `owners`, so they are read again.
   */
  private transaction(work: () => void): void {
    this.statements.begin.run([]);
    try {
      this.refresh();
      work();
      this.statements.commit.run([]);
    } catch (err) {
      this.version = undefined;
      this.statements.rollback.run([]);
      throw err;
    }
  }
}

/**
 * Moves the staged rows whose rowids the JSON array `?` lists, in its order, which numbers seq: seq orders
 * an owner's entries of the same millisecond, so each owner's rows are listed in arrival order. The left
 * side of a CROSS JOIN is SQLite's outer loop, so the rows go in as listed, each found by its rowid:
 * nothing is sorted (a sort would copy every stanza, and spill them to temporary files when they are
 * large). Of a repeated id, the first is kept. `WHERE` before `ON CONFLICT` keeps SQLite from reading the
 * clause as part of the join.
 */
export const MOVE_SQL =
  `INSERT INTO archive (${COLUMNS}) ` +
  'SELECT s.username, s.id, s.with_jid, s.ts, s.direction, s.stanza ' +
  'FROM json_each(?) AS listed CROSS JOIN archive_staged AS s ON s.rowid = listed.value ' +
  'WHERE true ON CONFLICT (username, id) DO NOTHING';

function prepareStatements(sqlite: SqliteConnection) {
  return {
    begin: sqlite.prepare('BEGIN IMMEDIATE'),
    commit: sqlite.prepare('COMMIT'),
    rollback: sqlite.prepare('ROLLBACK'),
    dataVersion: sqlite.prepare('PRAGMA data_version'),
    stage: sqlite.prepare(`INSERT INTO archive_staged (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`),
    stagedOwners: sqlite.prepare('SELECT rowid, username FROM archive_staged ORDER BY rowid'),
    move: sqlite.prepare(MOVE_SQL),
    clearAll: sqlite.prepare('DELETE FROM archive_staged'),
    clearRows: sqlite.prepare('DELETE FROM archive_staged WHERE rowid IN (SELECT value FROM json_each(?))'),
    removeOwner: sqlite.prepare('DELETE FROM archive WHERE username = ?'),
  };
}

async function openArchive(options: ArchiveThreadOptions): Promise<StagedArchive> {
  const sqlite = await openSqlite(options.file, options.driver);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    sqlite.exec('PRAGMA journal_mode = WAL');
    // An archive write is acknowledged once stored: it must survive power loss, as the store's do.
    sqlite.exec('PRAGMA synchronous = FULL');
    sqlite.exec('PRAGMA busy_timeout = 5000');
    await migrateArchiveFile(db);
    return new StagedArchive(sqlite, db, createSqlArchive(db));
  } catch (err) {
    await db.destroy();
    throw err;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Answers the requests that arrive on `port`, one at a time, in order. */
export function serveArchive(port: MessagePort, options: ArchiveThreadOptions): void {
  // The server's thread keeps deliveries going; on one busy core it should win over archiving, which
  // waits in the bus meanwhile. On Linux a priority is a thread's own (setpriority on the calling thread);
  // elsewhere it would be the whole process's, so it is left alone there.
  if (process.platform === 'linux') {
    try {
      setPriority(Math.min(NICE_LOWEST, getPriority() + ARCHIVE_NICE));
    } catch {
      // A priority that cannot be lowered (a container policy) leaves the thread as it is.
    }
  }
  const moveRows = options.moveRows ?? MOVE_ROWS;
  const quietMs = options.quietMs ?? QUIET_MS;
  const ready = openArchive(options);
  let opened: StagedArchive | undefined;
  // Each task waits for the one before it; a failed one does not stop those after it.
  let queue: Promise<unknown> = ready.then(
    (archive) => {
      opened = archive;
    },
    () => undefined,
  );
  let quiet: NodeJS.Timeout | undefined;
  const staged = (): number => opened?.stagedRows ?? 0;

  function run<T>(task: () => Promise<T>): Promise<T> {
    const result = queue.then(task);
    queue = result.catch(() => undefined);
    return result;
  }

  // A failed move leaves its rows staged, for the next move to take; a query of their owner reports it.
  const moveAll = (): void =>
    void run(async () => {
      (await ready).moveAll();
    }).then(
      () => port.postMessage({ moved: true, staged: staged(), heap: heap() } satisfies ArchiveReply),
      (err: unknown) =>
        port.postMessage({
          moved: true,
          staged: staged(),
          heap: heap(),
          error: describe(err),
        } satisfies ArchiveReply),
    );

  async function handle(request: ArchiveRequest): Promise<unknown> {
    if (request.op === 'close') {
      clearTimeout(quiet);
      // An archive that never opened has nothing to close; its callers were told why.
      const archive = await ready.catch(() => undefined);
      await archive?.close();
      return undefined;
    }
    const archive = await ready;
    switch (request.op) {
      case 'append':
        archive.append(request.rows);
        clearTimeout(quiet);
        if (archive.stagedRows >= moveRows) moveAll();
        else if (archive.stagedRows > 0) quiet = setTimeout(moveAll, quietMs);
        return undefined;
      case 'query':
        return archive.query(request.username, request.query);
      case 'removeAll':
        return archive.removeAll(request.username);
      case 'import':
        return archive.importFrom(request.file);
    }
  }

  port.on('message', (message: ArchiveRequest & { readonly id: number }) => {
    run(() => handle(message)).then(
      (value) => port.postMessage({ id: message.id, value, staged: staged() } satisfies ArchiveReply),
      (err: unknown) =>
        port.postMessage({ id: message.id, error: describe(err), staged: staged() } satisfies ArchiveReply),
    );
  });
}
