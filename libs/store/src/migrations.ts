// Store migrations: versioned schema steps in order, applied by Kysely's Migrator on SQLite and PostgreSQL.
import { Migrator, type Kysely, type Migration } from 'kysely';
import type { Database } from './schema.ts';

/** The SQL dialects the store runs on; they differ only in how an auto-numbered column is declared. */
export type SqlDialect = 'sqlite' | 'postgres';

/** Steps see the database untyped: they run against the schema as it was when they were written. */
type UntypedDb = Parameters<Migration['up']>[0];

interface Step {
  /** Zero-padded, because the Migrator orders names as strings. */
  readonly name: string;
  up(db: UntypedDb, dialect: SqlDialect): Promise<void>;
}

async function createTables(db: UntypedDb, dialect: SqlDialect): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('username', 'text', (c) => c.primaryKey())
    .addColumn('scram', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('roster_items')
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('contact', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('subscription', 'text', (c) => c.notNull())
    .addColumn('ask_out', 'integer', (c) => c.notNull())
    .addColumn('approved', 'integer', (c) => c.notNull())
    .addColumn('group_names', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('roster_items_pk', ['username', 'contact'])
    .execute();

  await db.schema
    .createTable('roster_versions')
    .addColumn('username', 'text', (c) => c.primaryKey())
    .addColumn('version', 'integer', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('subscription_requests')
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('contact', 'text', (c) => c.notNull())
    .addColumn('stanza', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('subscription_requests_pk', ['username', 'contact'])
    .execute();

  // Ids are handed to clients' sessions for removal, so a deleted id must never come back:
  // AUTOINCREMENT in SQLite, an identity column in PostgreSQL.
  await db.schema
    .createTable('offline_messages')
    .addColumn('id', dialect === 'sqlite' ? 'integer' : 'bigint', (c) =>
      dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey().generatedAlwaysAsIdentity(),
    )
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('stanza', 'text', (c) => c.notNull())
    .addColumn('stored_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('offline_messages_username_id')
    .on('offline_messages')
    .columns(['username', 'id'])
    .execute();

  await db.schema
    .createTable('offline_counts')
    .addColumn('username', 'text', (c) => c.primaryKey())
    .addColumn('count', 'integer', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('user_documents')
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('xml', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_documents_pk', ['username', 'kind', 'key'])
    .execute();

  await db.schema
    .createTable('blocklist')
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('jid', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('blocklist_pk', ['username', 'jid'])
    .execute();

  await db.schema
    .createTable('last_activity')
    .addColumn('username', 'text', (c) => c.primaryKey())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .execute();
}

/**
 * XEP-0313 archives. Paging goes by (ts, seq); seq is auto-numbered, so it grows with every append and
 * keeps entries of the same millisecond in arrival order. SQLite auto-numbers only a primary key, so
 * seq is the primary key in both dialects and (username, id) is unique beside it.
 */
async function createArchive(db: UntypedDb, dialect: SqlDialect): Promise<void> {
  await db.schema
    .createTable('archive')
    .addColumn('seq', dialect === 'sqlite' ? 'integer' : 'bigint', (c) =>
      dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey().generatedAlwaysAsIdentity(),
    )
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('with_jid', 'text', (c) => c.notNull())
    .addColumn('ts', 'bigint', (c) => c.notNull())
    .addColumn('direction', 'text', (c) => c.notNull())
    .addColumn('stanza', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('archive_username_id')
    .on('archive')
    .columns(['username', 'id'])
    .unique()
    .execute();
  await db.schema
    .createIndex('archive_username_ts_seq')
    .on('archive')
    .columns(['username', 'ts', 'seq'])
    .execute();
  // Clients mostly page through one conversation at a time.
  await db.schema
    .createIndex('archive_username_with_ts_seq')
    .on('archive')
    .columns(['username', 'with_jid', 'ts', 'seq'])
    .execute();
}

/**
 * Where the embedded archive's appends land first: no index but the rowid, so an append writes at the
 * table's end only. The archive's thread moves them into `archive` in large batches (archive-worker.ts).
 */
async function createStagedArchive(db: UntypedDb): Promise<void> {
  await db.schema
    .createTable('archive_staged')
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('with_jid', 'text', (c) => c.notNull())
    .addColumn('ts', 'bigint', (c) => c.notNull())
    .addColumn('direction', 'text', (c) => c.notNull())
    .addColumn('stanza', 'text', (c) => c.notNull())
    .execute();
}

/** Staged rows by owner (dropped again by 0004). */
async function indexStagedArchive(db: UntypedDb): Promise<void> {
  await db.schema.createIndex('archive_staged_username').on('archive_staged').column('username').execute();
}

/**
 * The archive's thread keeps each staged row's owner itself, so the staged rows need no index: each
 * append then writes at the table's end only, about half the pages it wrote with the index.
 */
async function unindexStagedArchive(db: UntypedDb): Promise<void> {
  await db.schema.dropIndex('archive_staged_username').ifExists().execute();
}

const STEPS: readonly Step[] = [
  { name: '0001-create-tables', up: createTables },
  { name: '0002-archive', up: createArchive },
];

/** The steps of the embedded store's archive file (SQLite only), which holds the archives and nothing else. */
const ARCHIVE_FILE_STEPS: readonly Step[] = [
  { name: '0001-archive', up: createArchive },
  { name: '0002-archive-staged', up: createStagedArchive },
  { name: '0003-archive-staged-username', up: indexStagedArchive },
  { name: '0004-archive-staged-unindexed', up: unindexStagedArchive },
];

/**
 * Applies every migration not yet recorded in the database (Kysely's `kysely_migration` table) and
 * returns the names of those it applied, in order; an up-to-date database yields `[]`.
 */
export function migrateToLatest(db: Kysely<Database>, dialect: SqlDialect): Promise<string[]> {
  return migrate(db, dialect, STEPS);
}

/** As `migrateToLatest`, for the embedded store's archive file (SQLite). */
export function migrateArchiveFile(db: Kysely<Database>): Promise<string[]> {
  return migrate(db, 'sqlite', ARCHIVE_FILE_STEPS);
}

async function migrate(db: Kysely<Database>, dialect: SqlDialect, steps: readonly Step[]): Promise<string[]> {
  const migrations: Record<string, Migration> = {};
  for (const step of steps) {
    migrations[step.name] = {
      // Kysely wraps each step in a transaction only where it deems DDL transactional (not SQLite);
      // a step half applied would be recorded as never run and then fail on its own leftovers.
      up: (target) =>
        target.isTransaction
          ? step.up(target, dialect)
          : target.transaction().execute((trx) => step.up(trx, dialect)),
    };
  }
  const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrations) } });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(failed ? `store migration ${failed} failed` : 'store migrations failed', {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
