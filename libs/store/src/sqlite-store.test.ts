// SQLite store: the Store contract on an in-memory database, plus files, directories and migrations.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, SqliteDialect } from 'kysely';
import { describeStoreContract } from '@starling/ports/contracts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';
import { defaultSqliteDriver, openSqlite } from './sqlite-driver.ts';
import { openSqliteStore } from './sqlite-store.ts';

// The contract runs against the driver this Node.js uses: better-sqlite3 on Node 20, node:sqlite where built in
// (better-sqlite3 12 aborts at teardown on Node 24, so it is not exercised there).
const nodeSqlite = await openSqlite(':memory:', 'node:sqlite').then(
  (db) => {
    db.close();
    return true;
  },
  () => false,
);
const driver = defaultSqliteDriver({});
describeStoreContract(`SQLite (${driver})`, () => openSqliteStore(':memory:', driver));

describe('SQLite driver choice', () => {
  it('uses node:sqlite where Node has it, better-sqlite3 otherwise, and honours STARLING_SQLITE_DRIVER', () => {
    expect(defaultSqliteDriver({})).toBe(nodeSqlite ? 'node:sqlite' : 'better-sqlite3');
    expect(defaultSqliteDriver({ STARLING_SQLITE_DRIVER: 'better-sqlite3' })).toBe('better-sqlite3');
    expect(() => defaultSqliteDriver({ STARLING_SQLITE_DRIVER: 'mysql' })).toThrow(/STARLING_SQLITE_DRIVER/);
  });
});

describe('openSqliteStore', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'starling-store-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function readFile(file: string, query: string): Promise<unknown[]> {
    const raw = await openSqlite(file);
    try {
      return raw.prepare(query).all([]);
    } finally {
      raw.close();
    }
  }

  it('creates the missing parent directories of the file', async () => {
    const file = join(dir, 'a', 'b', 'starling.db');
    const store = await openSqliteStore(file);
    await store.close();
    expect((await stat(file)).isFile()).toBe(true);
  });

  it('keeps data across closing and reopening the file', async () => {
    const file = join(dir, 'starling.db');
    const first = await openSqliteStore(file);
    await first.accounts.create({
      username: 'juliet',
      scram: {
        'SHA-1': { salt: 'cw==', iterations: 4096, storedKey: 'aw==', serverKey: 'cw==' },
        'SHA-256': { salt: 'cw==', iterations: 4096, storedKey: 'aw==', serverKey: 'cw==' },
      },
      createdAt: 1_700_000_000_000,
    });
    const version = await first.rosters.setItem('juliet', {
      jid: 'romeo@example.net',
      subscription: 'both',
      askOut: false,
      approved: false,
      groups: ['Verona'],
    });
    await first.offline.push('juliet', '<message/>', 1_700_000_000_001, 10);
    await first.close();

    const second = await openSqliteStore(file);
    expect((await second.accounts.get('juliet'))?.createdAt).toBe(1_700_000_000_000);
    expect(await second.rosters.get('juliet')).toEqual({
      version,
      items: [
        {
          jid: 'romeo@example.net',
          subscription: 'both',
          askOut: false,
          approved: false,
          groups: ['Verona'],
        },
      ],
    });
    expect(await second.offline.list('juliet')).toEqual([
      { id: expect.any(Number) as number, stanza: '<message/>', storedAt: 1_700_000_000_001 },
    ]);
    // The version goes on from where it was, so clients' cached versions stay comparable.
    expect(await second.rosters.removeItem('juliet', 'romeo@example.net')).toBeGreaterThan(version);
    await second.close();
  });

  it('records its migrations, opens the file in WAL mode, and does not migrate twice', async () => {
    const file = join(dir, 'starling.db');
    await (await openSqliteStore(file)).close();
    await (await openSqliteStore(file)).close();
    expect(await readFile(file, 'select name from kysely_migration')).toEqual([
      { name: '0001-create-tables' },
      { name: '0002-archive' },
    ]);
    expect(await readFile(file, 'pragma journal_mode')).toEqual([{ journal_mode: 'wal' }]);
  });

  it('closes the database on close', async () => {
    const store = await openSqliteStore(':memory:');
    await store.close();
    await expect(store.accounts.list()).rejects.toThrow();
  });
});

describe('migrateToLatest', () => {
  it('creates every table and index, then finds nothing left to do', async () => {
    const sqlite = await openSqlite(':memory:');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    expect(await migrateToLatest(db, 'sqlite')).toEqual(['0001-create-tables', '0002-archive']);
    expect(await migrateToLatest(db, 'sqlite')).toEqual([]);
    const names = (
      sqlite.prepare("select name from sqlite_master where type in ('table', 'index')").all([]) as {
        name: string;
      }[]
    ).map((r) => r.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'accounts',
        'roster_items',
        'roster_versions',
        'subscription_requests',
        'offline_messages',
        'offline_messages_username_id',
        'offline_counts',
        'user_documents',
        'blocklist',
        'last_activity',
        'archive',
        'archive_username_id',
        'archive_username_ts_seq',
        'archive_username_with_ts_seq',
      ]),
    );
    await db.destroy();
  });
});
