// `npm run bench:archive-rows`: what one archive row costs the embedded store (SQLite), written as the
// archive role writes them: multi-row appends of a batch's entries, over many owners.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSqlite, openSqliteStore } from '@starling/store';
import { newStanzaId } from '../../libs/features/src/xep-0359-stanza-ids.ts';

/** The indexes that may be dropped to see what each costs; the unique one is what appends rely on. */
const INDEXES = { time: 'archive_username_ts_seq', peer: 'archive_username_with_ts_seq' } as const;

const USAGE = `Usage: npm run bench:archive-rows -- [--db FILE] [--rows N] [--batch N] [--owners N] [--without time,peer]
  --db FILE        append to this database (a copy of a real one, say); default: a new one
  --rows N         rows written (default 100000)
  --batch N        rows per append (default 32, about a turn's worth at 5,000 msg/s)
  --owners N       archives the rows spread over (default 1000)
  --without LIST   drop these indexes first (time, peer), to see what each costs`;

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
    const stanza = `<message xmlns='jabber:client' type='chat'><body>${'x'.repeat(64)}</body></message>`;
    let cpu = 0;
    let wall = 0;
    for (let done = 0; done < rows; done += batch) {
      const entries = Array.from({ length: Math.min(batch, rows - done) }, (_, i) => {
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
      await store.archive.appendMany(entries);
      const used = process.cpuUsage(before);
      cpu += used.user + used.system;
      wall += performance.now() - started;
    }
    await store.close();
    process.stdout.write(
      `archive rows: ${String(rows)} in appends of ${String(batch)} over ${String(owners)} owners` +
        `${without.length > 0 ? `, without the ${without.join(' and ')} index` : ''}\n` +
        `  cpu_us_per_row   ${(cpu / rows).toFixed(1)}\n` +
        `  wall_us_per_row  ${((wall * 1000) / rows).toFixed(1)}\n`,
    );
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:archive-rows: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
});
