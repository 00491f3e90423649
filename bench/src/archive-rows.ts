// `npm run bench:archive-rows`: what one archive row costs the embedded store (SQLite), written as the
// archive role writes them: appends of a batch's entries at a time, over many owners. By default through
// the store as the server opens it: the archive's own thread stages the rows and moves them into the
// indexed archive in large batches. With --direct, the layout before it: each row added to the indexed
// archive as it comes, on the calling thread. CPU is the whole process's, every thread's.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kysely, SqliteDialect } from 'kysely';
import type { ArchiveEntry, ArchiveStore } from '@starling/ports';
import {
  archiveFileFor,
  createSqlArchive,
  migrateArchiveFile,
  openSqlite,
  openSqliteStore,
  type Database,
} from '@starling/store';
import { newStanzaId } from '../../libs/features/src/xep-0359-stanza-ids.ts';
import { wholeNumber } from './args.ts';

/** The indexes that may be dropped to see what each costs; the unique one is what appends rely on. */
const INDEXES = { time: 'archive_username_ts_seq', peer: 'archive_username_with_ts_seq' } as const;

const USAGE = `Usage: npm run bench:archive-rows -- [--db FILE] [--rows N] [--batch N] [--owners N] [--without time,peer] [--move N | --direct]
  --db FILE        the store's file (its archive is FILE-archive.db beside it); default: a new one
  --rows N         rows written (default 100000)
  --batch N        rows per append (default 32, about a turn's worth at 5,000 msg/s)
  --owners N       archives the rows spread over (default 1000)
  --without LIST   drop these indexes first (time, peer), to see what each costs
  --move N         staged rows that start a move into the archive (default: the store's, 20000)
  --direct         add each row to the indexed archive as it comes, on this thread`;

interface Row {
  readonly username: string;
  readonly entry: ArchiveEntry;
}

/** Opens the archive file on this thread (creating and migrating it), for --direct and --without. */
async function openArchiveFile(file: string): Promise<Kysely<Database>> {
  const sqlite = await openSqlite(file);
  sqlite.exec('PRAGMA journal_mode = WAL');
  sqlite.exec('PRAGMA synchronous = FULL');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrateArchiveFile(db);
  return db;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      db: { type: 'string' },
      rows: { type: 'string' },
      batch: { type: 'string' },
      owners: { type: 'string' },
      without: { type: 'string' },
      move: { type: 'string' },
      direct: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const rows = wholeNumber(values.rows, 100_000, 'rows');
  const batch = wholeNumber(values.batch, 32, 'batch');
  const owners = wholeNumber(values.owners, 1000, 'owners');
  const move = values.move === undefined ? undefined : wholeNumber(values.move, 0, 'move');
  const direct = values.direct === true;
  if (direct && move !== undefined) throw new Error('--move and --direct do not go together');
  const without = (values.without ?? '').split(',').filter((name) => name !== '');
  for (const name of without) {
    if (!(name in INDEXES)) throw new Error(`--without takes time and peer, not "${name}"`);
  }
  const scratch =
    values.db === undefined ? await mkdtemp(join(tmpdir(), 'starling-archive-rows-')) : undefined;
  const file = values.db ?? join(scratch as string, 'starling.db');
  try {
    // The store first (it moves an archive kept in an older store file out), then the archive file,
    // created or migrated, so that its indexes exist to be dropped.
    await (await openSqliteStore(file)).close();
    const archiveDb = await openArchiveFile(archiveFileFor(file));
    for (const name of without) {
      await archiveDb.schema
        .dropIndex(INDEXES[name as keyof typeof INDEXES])
        .ifExists()
        .execute();
    }
    if (!direct) await archiveDb.destroy();
    const store = direct
      ? undefined
      : await openSqliteStore(file, { archive: move === undefined ? {} : { moveRows: move } });
    const archive: ArchiveStore = store?.archive ?? createSqlArchive(archiveDb);

    // The archive's thread starts with its first call: started before the clock does.
    await archive.query('nobody', { max: 0 });
    const stanza = `<message xmlns='jabber:client' type='chat'><body>${'x'.repeat(64)}</body></message>`;
    let longestAppend = 0;
    const started = performance.now();
    const before = process.cpuUsage();
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
      const appending = performance.now();
      await archive.appendMany(entries);
      longestAppend = Math.max(longestAppend, performance.now() - appending);
    }
    const appended = process.cpuUsage(before);
    // Closing moves the rows still staged: their move is part of their cost.
    const closing = performance.now();
    if (store === undefined) await archiveDb.destroy();
    else await store.close();
    const closed = performance.now() - closing;
    const used = process.cpuUsage(before);
    const wall = performance.now() - started;
    process.stdout.write(
      `archive rows: ${String(rows)} in appends of ${String(batch)} over ${String(owners)} owners` +
        (without.length > 0 ? `, without the ${without.join(' and ')} index` : '') +
        (direct
          ? ', each added to the archive as it comes'
          : `, staged and moved every ${move === undefined ? "store's default number of" : String(move)} rows`) +
        '\n' +
        `  cpu_us_per_row     ${((used.user + used.system) / rows).toFixed(1)}\n` +
        `  wall_us_per_row    ${((wall * 1000) / rows).toFixed(1)}\n` +
        `  longest_append_ms  ${longestAppend.toFixed(1)}\n` +
        `  close_ms           ${closed.toFixed(1)} (cpu before it: ${((appended.user + appended.system) / rows).toFixed(1)} us per row)\n`,
    );
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:archive-rows: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
});
