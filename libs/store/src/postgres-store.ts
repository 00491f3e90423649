// Store on PostgreSQL (cluster shape): a bounded pg pool shared by one process's roles, migrated on open.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Store } from '@starling/ports';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';
import { createSqlStore } from './sql-store.ts';

/** Options of `openPostgresStore`. */
export interface PostgresStoreOptions {
  /** Most connections the process holds open; 10 when unset. */
  readonly max?: number;
}

/**
 * int8 arrives as text because it can exceed 2^53. Ids and millisecond timestamps never come near that,
 * so they become numbers; a value that would lose precision fails its query instead of coming back wrong.
 */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value))
    throw new RangeError(`int8 value ${text} exceeds Number.MAX_SAFE_INTEGER`);
  return value;
}

// Per pool rather than pg's global registry, so other users of pg in the process keep their parsers.
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? parseInt8
      : (pg.types.getTypeParser(oid, format) as (value: string) => unknown),
};

/**
 * Opens a pool on the PostgreSQL database at `url` (a `postgres://` connection string) and migrates it
 * to the latest schema. Several processes may open the same database at once: Kysely's Migrator
 * serializes them with an advisory lock, so each migration runs once. The store's `close()` ends the pool.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: 'starling',
    // A statement stuck behind a lock must fail the stanza it serves rather than hold a router's partition.
    statement_timeout: 30_000,
    // A transaction left open by a stalled process would keep a user's counter rows locked.
    idle_in_transaction_session_timeout: 60_000,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    types,
  });
  // An idle connection that breaks (server restart, failover) is dropped by the pool and replaced on the
  // next query; errors of running queries reach their callers. Unhandled, this event would end the process.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db, 'postgres');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return createSqlStore(db);
}
