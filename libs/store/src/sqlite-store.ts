// Store on an SQLite file (embedded shape): opens the database with durable settings and migrates it.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Kysely, SqliteDialect } from 'kysely';
import type { Store } from '@starling/ports';
import { migrateToLatest } from './migrations.ts';
import { openSqlite, type SqliteDriverName } from './sqlite-driver.ts';
import { createSqlStore } from './sql-store.ts';
import type { Database } from './schema.ts';

/**
 * Opens (creating file and parent directories if needed) and migrates the SQLite database at `file`;
 * `':memory:'` gives a private in-memory database. The store's `close()` closes the database.
 */
export async function openSqliteStore(file: string, driver?: SqliteDriverName): Promise<Store> {
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
  try {
    await migrateToLatest(db, 'sqlite');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return createSqlStore(db);
}
