// SQLite store: the Store contract on an in-memory database, plus files, directories and migrations.
import { copyFile, mkdir, mkdtemp, readdir, readFile as readFileText, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, SqliteDialect } from 'kysely';
import type { ArchiveEntry, ArchivePage } from '@starling/ports';
import { describeStoreContract } from '@starling/ports/contracts';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MOVE_SQL } from './archive-worker.ts';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';
import { defaultSqliteDriver, openSqlite } from './sqlite-driver.ts';
import { createSqlArchive } from './sql-store.ts';
import { archiveFileFor, archiveHeapMb, openSqliteStore } from './sqlite-store.ts';

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
describeStoreContract(`SQLite (${driver})`, () => openSqliteStore(':memory:', { driver }));

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

  async function readFile(file: string, query: string, parameters: unknown[] = []): Promise<unknown[]> {
    const raw = await openSqlite(file);
    try {
      return raw.prepare(query).all(parameters);
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

  const entry = (id: string, ts: number): ArchiveEntry => ({
    id,
    with: 'romeo@example.net',
    ts,
    direction: 'in',
    stanza: `<message id='${id}'/>`,
  });
  const ids = (page: ArchivePage | undefined): string[] | undefined => page?.items.map((item) => item.id);
  const counts = async (file: string): Promise<unknown[]> =>
    readFile(
      file,
      'select (select count(*) from archive) as archived, (select count(*) from archive_staged) as staged',
    );

  it('keeps the archives in a file of their own beside the store', async () => {
    const file = join(dir, 'starling.db');
    const first = await openSqliteStore(file);
    await first.archive.appendMany([
      { username: 'juliet', entry: entry('a', 1) },
      { username: 'juliet', entry: entry('b', 1) },
    ]);
    await first.close();

    expect(archiveFileFor(file)).toBe(join(dir, 'starling-archive.db'));
    expect(await counts(archiveFileFor(file))).toEqual([{ archived: 2, staged: 0 }]);
    expect(await readFile(file, "select name from sqlite_master where name like 'archive%'")).toEqual([]);
    const second = await openSqliteStore(file);
    expect(ids(await second.archive.query('juliet', { max: 10 }))).toEqual(['a', 'b']);
    await second.close();
  });

  it('moves the archive of a store file that held it into the archive file, once', async () => {
    const file = join(dir, 'starling.db');
    // A store file as the store made them before: the archive in its own `archive` table.
    const sqlite = await openSqlite(file);
    const older = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    await migrateToLatest(older, 'sqlite');
    await createSqlArchive(older).appendMany([
      { username: 'juliet', entry: entry('late', 5) },
      { username: 'juliet', entry: entry('early', 1) },
      { username: 'romeo', entry: entry('theirs', 3) },
      { username: 'juliet', entry: entry('same-ms', 5) },
    ]);
    await older.destroy();
    const before = join(dir, 'before.db');
    await copyFile(file, before);

    const first = await openSqliteStore(file);
    // Entries of the same millisecond keep the order they were appended in.
    expect(ids(await first.archive.query('juliet', { max: 10 }))).toEqual(['early', 'late', 'same-ms']);
    expect(ids(await first.archive.query('romeo', { max: 10 }))).toEqual(['theirs']);
    await first.archive.append('juliet', entry('newer', 5));
    await first.close();
    expect(await readFile(file, "select name from sqlite_master where name = 'archive'")).toEqual([]);

    // As if the table had not been dropped after the copy (the process stopped in between): opened
    // again, nothing is copied twice, and what was appended since still comes after what was copied.
    await copyFile(before, file);
    const second = await openSqliteStore(file);
    expect(ids(await second.archive.query('juliet', { max: 10 }))).toEqual([
      'early',
      'late',
      'same-ms',
      'newer',
    ]);
    expect(ids(await second.archive.query('romeo', { max: 10 }))).toEqual(['theirs']);
    await second.close();
  });

  it('stages appends, moves them in batches, and moves what a stopped thread left staged', async () => {
    const file = join(dir, 'starling.db');
    const archiveFile = archiveFileFor(file);
    const told: number[] = [];
    const store = await openSqliteStore(file, {
      archive: { moveRows: 10, quietMs: 60_000, observer: { staged: (rows) => told.push(rows) } },
    });
    for (let n = 0; n < 25; n += 1) {
      await store.archive.append(n % 2 === 0 ? 'juliet' : 'nurse', entry(`m${String(n)}`, n));
    }
    // Moves at the 10th and 20th row; the last five wait staged.
    expect(await counts(archiveFile)).toEqual([{ archived: 20, staged: 5 }]);
    // The observer heard the count after each append and each move (a move's word may come after the
    // next append's answer), ending with the five.
    expect(told.at(-1)).toBe(5);
    expect(told.filter((rows) => rows === 0)).toHaveLength(2);
    expect(Math.max(...told)).toBeLessThanOrEqual(11);
    // A query moves its owner's staged rows first (three of juliet's), and no one else's.
    expect(ids(await store.archive.query('juliet', { after: 'm18', max: 10 }))).toEqual([
      'm20',
      'm22',
      'm24',
    ]);
    expect(await counts(archiveFile)).toEqual([{ archived: 23, staged: 2 }]);
    // The rows the query moved no longer count toward the next move: 2 + 6 staged is under 10.
    for (let n = 25; n < 31; n += 1) await store.archive.append('nurse', entry(`m${String(n)}`, n));
    expect(await counts(archiveFile)).toEqual([{ archived: 23, staged: 8 }]);
    await store.close();
    expect(await counts(archiveFile)).toEqual([{ archived: 31, staged: 0 }]);

    // A thread stopped before its move leaves rows staged; the next one moves them when it starts.
    const raw = await openSqlite(archiveFile);
    raw
      .prepare(
        'insert into archive_staged (username, id, with_jid, ts, direction, stanza) values (?, ?, ?, ?, ?, ?)',
      )
      .run(['nurse', 'left', 'romeo@example.net', 99, 'in', "<message id='left'/>"]);
    raw.close();
    const again = await openSqliteStore(file);
    expect(ids(await again.archive.query('nurse', { after: 'm30', max: 10 }))).toEqual(['left']);
    expect(await counts(archiveFile)).toEqual([{ archived: 32, staged: 0 }]);
    await again.close();
  });

  it('keeps up with staged rows another connection took away or added while it runs', async () => {
    const file = join(dir, 'starling.db');
    const archiveFile = archiveFileFor(file);
    const store = await openSqliteStore(file, { archive: { quietMs: 60_000 } });
    await store.archive.append('juliet', entry('j1', 1));
    await store.archive.append('juliet', entry('j2', 2));
    // Another process (a CLI removing an account) deletes juliet's staged rows; romeo's rows, staged
    // next, take their rowids again.
    const raw = await openSqlite(archiveFile);
    raw.prepare("delete from archive_staged where username = 'juliet'").run([]);
    await store.archive.append('romeo', entry('r1', 3));
    await store.archive.append('romeo', entry('r2', 4));
    // juliet has nothing left to move: romeo's rows stay staged.
    expect(ids(await store.archive.query('juliet', { max: 10 }))).toEqual([]);
    expect(await counts(archiveFile)).toEqual([{ archived: 0, staged: 2 }]);
    // A row the other process staged is found by its owner's query, and moved with the rest at close.
    raw
      .prepare(
        'insert into archive_staged (username, id, with_jid, ts, direction, stanza) values (?, ?, ?, ?, ?, ?)',
      )
      .run(['nurse', 'theirs', 'romeo@example.net', 5, 'in', "<message id='theirs'/>"]);
    raw.close();
    expect(ids(await store.archive.query('nurse', { max: 10 }))).toEqual(['theirs']);
    expect(await counts(archiveFile)).toEqual([{ archived: 1, staged: 2 }]);
    await store.close();
    expect(await counts(archiveFile)).toEqual([{ archived: 3, staged: 0 }]);
    const again = await openSqliteStore(file);
    expect(ids(await again.archive.query('romeo', { max: 10 }))).toEqual(['r1', 'r2']);
    await again.close();
  });

  it('moves owners interleaved in arrival order per owner, keeping the first of a repeated id', async () => {
    const file = join(dir, 'starling.db');
    const store = await openSqliteStore(file, { archive: { moveRows: 6, quietMs: 60_000 } });
    // All in one millisecond, ids not in arrival order: only seq, numbered by the move, orders them.
    await store.archive.appendMany([
      { username: 'nurse', entry: entry('n2', 7) },
      { username: 'juliet', entry: entry('z', 7) },
      { username: 'nurse', entry: entry('n1', 7) },
      { username: 'juliet', entry: entry('a', 7) },
      { username: 'juliet', entry: { ...entry('z', 7), stanza: "<message id='z' replayed=''/>" } },
      { username: 'juliet', entry: entry('m', 7) },
    ]);
    await vi.waitFor(
      async () => expect(await counts(archiveFileFor(file))).toEqual([{ archived: 5, staged: 0 }]),
      {
        timeout: 5_000,
      },
    );
    // The staged rows have no index to keep up; the move goes down the listed rowids, finding each row by
    // its rowid, and sorts nothing (no copy of every stanza).
    expect(
      await readFile(
        archiveFileFor(file),
        "SELECT name FROM sqlite_master WHERE tbl_name = 'archive_staged'",
      ),
    ).toEqual([{ name: 'archive_staged' }]);
    const plan = (await readFile(archiveFileFor(file), `EXPLAIN QUERY PLAN ${MOVE_SQL}`, ['[]'])) as {
      detail: string;
    }[];
    expect(plan.map((step) => step.detail)).toEqual([
      expect.stringMatching(/^SCAN listed VIRTUAL TABLE INDEX /),
      'SEARCH s USING INTEGER PRIMARY KEY (rowid=?)',
    ]);
    const juliet = await store.archive.query('juliet', { max: 10 });
    expect(ids(juliet)).toEqual(['z', 'a', 'm']);
    expect(juliet?.items[0]?.stanza).toBe("<message id='z'/>");
    expect(ids(await store.archive.query('nurse', { max: 10 }))).toEqual(['n2', 'n1']);
    // Paging from the middle of the millisecond goes on in the same order.
    expect(ids(await store.archive.query('juliet', { after: 'z', max: 10 }))).toEqual(['a', 'm']);
    await store.close();
  });

  it('tells the observer of a failed move, and keeps its rows staged for the next one', async () => {
    const file = join(dir, 'starling.db');
    const archiveFile = archiveFileFor(file);
    const failures: string[] = [];
    const told: number[] = [];
    const store = await openSqliteStore(file, {
      archive: {
        moveRows: 2,
        quietMs: 60_000,
        observer: { staged: (rows) => told.push(rows), moveFailed: (error) => failures.push(error) },
      },
    });
    await store.archive.append('juliet', entry('a', 1));
    // The indexed archive goes away under the thread (as a damaged file would fail a write).
    const raw = await openSqlite(archiveFile);
    raw.exec('ALTER TABLE archive RENAME TO archive_away');
    await store.archive.append('juliet', entry('b', 2));
    await vi.waitFor(() => expect(failures).toHaveLength(1), { timeout: 5_000 });
    expect(failures[0]).toMatch(/no such table: (main\.)?archive/);
    expect(told.at(-1)).toBe(2);
    expect(await readFile(archiveFile, 'SELECT count(*) AS n FROM archive_staged')).toEqual([{ n: 2 }]);
    // Once the archive is back, the next move takes the rows the failed one left.
    raw.exec('ALTER TABLE archive_away RENAME TO archive');
    raw.close();
    await store.archive.append('juliet', entry('c', 3));
    await vi.waitFor(() => expect(told.at(-1)).toBe(0), { timeout: 5_000 });
    expect(ids(await store.archive.query('juliet', { max: 10 }))).toEqual(['a', 'b', 'c']);
    expect(failures).toHaveLength(1);
    await store.close();
  });

  it('starts the archive thread again after it stopped, with the rows it had staged', async () => {
    const file = join(dir, 'starling.db');
    const store = await openSqliteStore(file, { archive: { quietMs: 60_000, maxHeapMb: 32 } });
    await store.archive.append('juliet', entry('before', 1));
    // Far more than the thread's heap in one call: the thread stops, the call fails, the server goes on.
    const huge = 'x'.repeat(8 * 1024 * 1024);
    const oversized = Array.from({ length: 16 }, (_, n) => ({
      username: 'juliet',
      entry: { ...entry(`big${String(n)}`, 2 + n), stanza: huge },
    }));
    await expect(store.archive.appendMany(oversized)).rejects.toThrow(/its thread stopped.*memory/);
    // The next call starts another thread, which finds the row the first one staged.
    await store.archive.append('juliet', entry('after', 30));
    expect(ids(await store.archive.query('juliet', { max: 10 }))).toEqual(['before', 'after']);
    await store.close();
  });

  it('sends appends made together to the thread as one, and keeps them before a later call', async () => {
    const file = join(dir, 'starling.db');
    const told: number[] = [];
    const store = await openSqliteStore(file, {
      archive: { quietMs: 60_000, observer: { staged: (rows) => told.push(rows) } },
    });
    await store.archive.query('juliet', { max: 0 });
    told.length = 0;
    // Ten appends within the gathering window: one message to the thread, one answer.
    await Promise.all(
      [...Array(10).keys()].map((n) => store.archive.append('juliet', entry(`g${String(n)}`, n))),
    );
    expect(told).toEqual([10]);
    // A query made before an append settled still comes after it: the gathered rows go first.
    const appended = store.archive.append('juliet', entry('late', 10));
    const page = await store.archive.query('juliet', { after: 'g9', max: 10 });
    await appended;
    expect(ids(page)).toEqual(['late']);
    await store.close();

    // An append still gathering when the store closes is stored, even as the thread's first call.
    const again = await openSqliteStore(file);
    const last = again.archive.append('juliet', entry('at-close', 11));
    await again.close();
    await last;
    expect(await readFile(archiveFileFor(file), "SELECT id FROM archive WHERE id = 'at-close'")).toEqual([
      { id: 'at-close' },
    ]);
  });

  it.runIf(process.platform === 'linux')(
    'runs the archive thread 10 nicer than the server’s thread',
    async () => {
      const niceOf = async (tid: string): Promise<number> => {
        const stat = await readFileText(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '');
        // The fields after the command's closing parenthesis; nice is the 19th field of the line.
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      };
      const nices = async (): Promise<number[]> =>
        Promise.all((await readdir('/proc/self/task')).map(niceOf));
      const server = await niceOf(String(process.pid));
      const lower = Math.min(19, server + 10);
      expect(await nices()).not.toContain(lower);
      const store = await openSqliteStore(join(dir, 'starling.db'));
      await store.archive.query('juliet', { max: 0 });
      expect(await nices()).toContain(lower);
      // This thread (the server's) keeps its priority.
      expect(await niceOf(String(process.pid))).toBe(server);
      await store.close();
    },
  );

  it('empties an archive of the rows another process has staged when removing it', async () => {
    const file = join(dir, 'starling.db');
    // A second store on the same files (the CLI) whose archive thread is already running, then the
    // server's stages rows, and the CLI deletes the account.
    const cli = await openSqliteStore(file);
    await cli.archive.query('nobody', { max: 0 });
    const server = await openSqliteStore(file, { archive: { quietMs: 60_000 } });
    await server.archive.append('juliet', entry('staged', 1));
    await server.archive.append('nurse', entry('kept', 1));
    expect(await cli.accounts.delete('juliet')).toBe(false);
    await cli.close();
    await server.archive.append('juliet', entry('after', 2));
    expect(ids(await server.archive.query('juliet', { max: 10 }))).toEqual(['after']);
    expect(ids(await server.archive.query('nurse', { max: 10 }))).toEqual(['kept']);
    await server.close();
  });

  it('answers archive calls with the error when the archive file cannot be opened', async () => {
    const file = join(dir, 'starling.db');
    await mkdir(archiveFileFor(file));
    const store = await openSqliteStore(file);
    await expect(store.archive.query('juliet', { max: 10 })).rejects.toThrow(/^archive: .*unable to open/i);
    await expect(store.archive.append('juliet', entry('a', 1))).rejects.toThrow(/^archive: /);
    // The rest of the store works, and closing it still closes everything.
    expect(await store.accounts.list()).toEqual([]);
    await store.close();
    await expect(store.archive.query('juliet', { max: 10 })).rejects.toThrow('archive: the store is closed');
  });

  it('closes the database on close', async () => {
    const store = await openSqliteStore(':memory:');
    await store.close();
    await expect(store.accounts.list()).rejects.toThrow();
  });
});

describe('archiveHeapMb', () => {
  it('gives the archive thread 1,024 MB up to the default stanza limit, and room for larger stanzas above', () => {
    expect(archiveHeapMb(64 * 1024)).toBe(1024);
    expect(archiveHeapMb(256 * 1024)).toBe(1024);
    // 1,024 stanzas of 1 MiB, up to twice that as strings, held twice: 4 GiB.
    expect(archiveHeapMb(1024 * 1024)).toBe(4096);
    expect(archiveHeapMb(300 * 1024)).toBe(1200);
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
