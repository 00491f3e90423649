// Store on SQLite files (embedded shape): opens the database with durable settings and migrates it. The
// message archives live in a second file beside it, kept by a thread of their own (archive-thread.ts):
// archiving is the busiest write, and SQLite writes one transaction at a time per file.
import { mkdir } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { Kysely, SqliteDialect } from 'kysely';
import type { Store } from '@starling/ports';
import { openArchiveThread, type ArchiveObserver, type ArchiveThread } from './archive-thread.ts';
import { migrateToLatest } from './migrations.ts';
import {
  defaultSqliteDriver,
  openSqlite,
  type SqliteConnection,
  type SqliteDriverName,
} from './sqlite-driver.ts';
import { createSqlStore } from './sql-store.ts';
import type { Database } from './schema.ts';

export type { ArchiveObserver } from './archive-thread.ts';
export { archiveHeapMb } from './archive-thread.ts';

export interface SqliteStoreOptions {
  /** The SQLite library (`defaultSqliteDriver()` unless set). */
  readonly driver?: SqliteDriverName;
  /**
   * How the archive's thread batches its moves (tests set small ones; see archive-worker.ts), its heap,
   * and who hears how many rows wait staged and which moves failed.
   */
  readonly archive?: {
    readonly moveRows?: number;
    readonly quietMs?: number;
    readonly maxHeapMb?: number;
    readonly observer?: ArchiveObserver;
  };
}

/** The archive file of the store at `file`: `starling.db` keeps its archives in `starling-archive.db`. */
export function archiveFileFor(file: string): string {
  if (file === ':memory:') return file;
  const extension = extname(file);
  return `${file.slice(0, file.length - extension.length)}-archive${extension}`;
}

/**
 * Stores made before the archive had a file of its own hold it in their `archive` table: its rows are
 * copied to the archive file (those copied before are left, so an interrupted copy just runs again) and
 * the table is dropped once they are safe there.
 */
async function moveArchiveOut(sqlite: SqliteConnection, file: string, archive: ArchiveThread): Promise<void> {
  const table = sqlite.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archive'");
  if (table.all([]).length === 0) return;
  if (sqlite.prepare('SELECT 1 FROM archive LIMIT 1').all([]).length > 0) {
    await archive.importFrom(resolve(file));
  }
  sqlite.exec('DROP TABLE archive');
}

/**
 * Opens (creating files and parent directories if needed) and migrates the SQLite database at `file` and
 * the archive file beside it (`archiveFileFor`); `':memory:'` gives private in-memory databases. The
 * store's `close()` closes both.
 */
export async function openSqliteStore(file: string, options: SqliteStoreOptions = {}): Promise<Store> {
  const driver = options.driver ?? defaultSqliteDriver();
  if (file !== ':memory:') await mkdir(dirname(file), { recursive: true });
  const sqlite = await openSqlite(file, driver);
  try {
    sqlite.exec('PRAGMA journal_mode = WAL');
    // A stanza is acknowledged once stored offline, so a commit must survive power loss, not only a crash.
    sqlite.exec('PRAGMA synchronous = FULL');
    sqlite.exec('PRAGMA foreign_keys = ON');
    // Another process (the CLI adding a user) may hold the write lock for a moment.
    sqlite.exec('PRAGMA busy_timeout = 5000');
  } catch (err) {
    sqlite.close();
    throw err;
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  const { observer, ...batching } = options.archive ?? {};
  const archive = openArchiveThread({ file: archiveFileFor(file), driver, ...batching }, observer);
  try {
    await migrateToLatest(db, 'sqlite');
    await moveArchiveOut(sqlite, file, archive);
  } catch (err) {
    await archive.close();
    await db.destroy();
    throw err;
  }
  return createSqlStore(db, archive);
}
