// `npm run bench:archive-rows`: what one archive row costs the embedded store (SQLite), written as the
// archive role writes them: multi-row appends of a batch's entries, over many owners. With --staged N,
// the layout that could replace it: appends to a table with no index, moved into the archive in one
// transaction every N rows (the move stalls whatever else runs on the thread; its longest is reported).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { SqliteStatement } from 'kysely';
import { openSqlite, openSqliteStore } from '@starling/store';
import { newStanzaId } from '../../libs/features/src/xep-0359-stanza-ids.ts';

/** The indexes that may be dropped to see what each costs; the unique one is what appends rely on. */
const INDEXES = { time: 'archive_username_ts_seq', peer: 'archive_username_with_ts_seq' } as const;

const USAGE = `Usage: npm run bench:archive-rows -- [--db FILE] [--rows N] [--batch N] [--owners N] [--without time,peer] [--staged N]
  --db FILE        append to this database (a copy of a real one, say); default: a new one
  --rows N         rows written (default 100000)
  --batch N        rows per append (default 32, about a turn's worth at 5,000 msg/s)
  --owners N       archives the rows spread over (default 1000)
  --without LIST   drop these indexes first (time, peer), to see what each costs
  --staged N       append to a table without indexes instead, moved into the archive every N rows`;

const COLUMNS = 'username, id, with_jid, ts, direction, stanza';

interface Row {
  readonly username: string;
  readonly entry: {
    readonly id: string;
    readonly with: string;
    readonly ts: number;
    readonly direction: 'in';
    readonly stanza: string;
  };
}

/**
 * The staged layout on the store's file: appends go to `archive_staged` (no index but the rowid), and
 * every `every` rows one transaction copies them into the archive in arrival order and empties it.
 */
async function stagedWriter(
  file: string,
  every: number,
): Promise<{ append(rows: readonly Row[]): void; flush(): void; moves: number[]; close(): void }> {
  const raw = await openSqlite(file);
  raw.exec('PRAGMA journal_mode = WAL');
  raw.exec('PRAGMA synchronous = FULL');
  raw.exec(
    `CREATE TABLE IF NOT EXISTS archive_staged (${COLUMNS.split(', ')
      .map((c) => `${c} NOT NULL`)
      .join(', ')})`,
  );
  const inserts = new Map<number, SqliteStatement>();
  const move = [
    raw.prepare('BEGIN IMMEDIATE'),
    raw.prepare(
      `INSERT INTO archive (${COLUMNS}) SELECT ${COLUMNS} FROM archive_staged WHERE true ORDER BY rowid ` +
        'ON CONFLICT (username, id) DO NOTHING',
    ),
    raw.prepare('DELETE FROM archive_staged'),
    raw.prepare('COMMIT'),
  ];
  const moves: number[] = [];
  let staged = 0;
  const flush = (): void => {
    if (staged === 0) return;
    const started = performance.now();
    for (const statement of move) statement.run([]);
    moves.push(performance.now() - started);
    staged = 0;
  };
  return {
    moves,
    flush,
    append(rows) {
      let insert = inserts.get(rows.length);
      if (insert === undefined) {
        const values = rows.map(() => '(?, ?, ?, ?, ?, ?)').join(', ');
        insert = raw.prepare(`INSERT INTO archive_staged (${COLUMNS}) VALUES ${values}`);
        inserts.set(rows.length, insert);
      }
      insert.run(
        rows.flatMap(({ username, entry }) => [
          username,
          entry.id,
          entry.with,
          entry.ts,
          entry.direction,
          entry.stanza,
        ]),
      );
      staged += rows.length;
      if (staged >= every) flush();
    },
    close() {
      raw.close();
    },
  };
}

function count(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} takes a positive whole number, not "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      db: { type: 'string' },
      rows: { type: 'string' },
      batch: { type: 'string' },
      owners: { type: 'string' },
      without: { type: 'string' },
      staged: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const rows = count(values.rows, 100_000, 'rows');
  const batch = count(values.batch, 32, 'batch');
  const owners = count(values.owners, 1000, 'owners');
  const staged = values.staged === undefined ? undefined : count(values.staged, 0, 'staged');
  const without = (values.without ?? '').split(',').filter((name) => name !== '');
  for (const name of without) {
    if (!(name in INDEXES)) throw new Error(`--without takes time and peer, not "${name}"`);
  }
  const scratch =
    values.db === undefined ? await mkdtemp(join(tmpdir(), 'starling-archive-rows-')) : undefined;
  const file = values.db ?? join(scratch as string, 'archive.db');
  try {
    // Created (or migrated) first, so that indexes exist to be dropped.
    await (await openSqliteStore(file)).close();
    if (without.length > 0) {
      const raw = await openSqlite(file);
      for (const name of without) raw.exec(`DROP INDEX IF EXISTS ${INDEXES[name as keyof typeof INDEXES]}`);
      raw.close();
    }
    const store = await openSqliteStore(file);
    const writer = staged === undefined ? undefined : await stagedWriter(file, staged);
    const stanza = `<message xmlns='jabber:client' type='chat'><body>${'x'.repeat(64)}</body></message>`;
    let cpu = 0;
    let wall = 0;
    for (let done = 0; done < rows; done += batch) {
      const entries = Array.from({ length: Math.min(batch, rows - done) }, (_, i): Row => {
        const n = done + i;
        return {
          username: `user${String(n % owners)}`,
          entry: {
            id: newStanzaId(),
            with: `user${String((n + 1) % owners)}@bench.example`,
            ts: Date.now(),
            direction: 'in' as const,
            stanza,
          },
        };
      });
      const started = performance.now();
      const before = process.cpuUsage();
      if (writer === undefined) await store.archive.appendMany(entries);
      else writer.append(entries);
      const used = process.cpuUsage(before);
      cpu += used.user + used.system;
      wall += performance.now() - started;
    }
    if (writer !== undefined) {
      // The rows still staged are moved too: their move is part of their cost.
      const before = process.cpuUsage();
      writer.flush();
      const used = process.cpuUsage(before);
      cpu += used.user + used.system;
      writer.close();
    }
    await store.close();
    const longest = writer === undefined ? [] : [Math.max(0, ...writer.moves)];
    process.stdout.write(
      `archive rows: ${String(rows)} in appends of ${String(batch)} over ${String(owners)} owners` +
        (without.length > 0 ? `, without the ${without.join(' and ')} index` : '') +
        `${staged === undefined ? '' : `, staged and moved every ${String(staged)} rows`}\n` +
        `  cpu_us_per_row   ${(cpu / rows).toFixed(1)}\n` +
        `  wall_us_per_row  ${((wall * 1000) / rows).toFixed(1)}\n` +
        longest.map((ms) => `  longest_move_ms  ${ms.toFixed(1)}\n`).join(''),
    );
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:archive-rows: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
});
