// Which SQLite library runs the embedded store: Node's own node:sqlite where Node has it, else better-sqlite3.
// better-sqlite3 12 aborts the process on Node 24 when a statement is garbage-collected during shutdown,
// and Node 22.13+ ships SQLite itself; on Node 20 better-sqlite3 is the only choice.
import type { SqliteDatabase, SqliteStatement } from 'kysely';

export type SqliteDriverName = 'node:sqlite' | 'better-sqlite3';

/** A connection Kysely can drive, plus `exec` for pragmas. */
export interface SqliteConnection extends SqliteDatabase {
  exec(sql: string): void;
  readonly driver: SqliteDriverName;
}

interface NodeStatement {
  all(...parameters: unknown[]): unknown[];
  run(...parameters: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  iterate(...parameters: unknown[]): IterableIterator<unknown>;
  columns?(): unknown[];
}

interface NodeDatabase {
  prepare(sql: string): NodeStatement;
  exec(sql: string): void;
  close(): void;
}

interface NodeSqliteModule {
  DatabaseSync: new (file: string) => NodeDatabase;
}

function builtinSqlite(): NodeSqliteModule | undefined {
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  let module: NodeSqliteModule | undefined;
  try {
    module = getBuiltin?.call(process, 'node:sqlite') as NodeSqliteModule | undefined;
  } catch {
    return undefined;
  }
  if (module === undefined) return undefined;
  // Kysely needs to know whether a statement returns rows; StatementSync#columns tells (Node 22.16+).
  const probe = new module.DatabaseSync(':memory:');
  try {
    return typeof probe.prepare('select 1').columns === 'function' ? module : undefined;
  } finally {
    probe.close();
  }
}

/** Distinct statements kept prepared; the store's queries are far fewer, so none is compiled twice. */
const STATEMENT_CACHE = 512;

/**
 * Prepares each SQL text once: compiling a statement costs more than running most of the store's queries.
 * Kysely runs one statement at a time on the connection and never streams here, so reuse is safe.
 */
function cached(prepare: (sql: string) => SqliteStatement): (sql: string) => SqliteStatement {
  const statements = new Map<string, SqliteStatement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      if (statements.size >= STATEMENT_CACHE) statements.clear();
      statement = prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
}

function wrapNode(db: NodeDatabase): SqliteConnection {
  return {
    driver: 'node:sqlite',
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
    prepare: cached((sql): SqliteStatement => {
      const statement = db.prepare(sql);
      return {
        reader: (statement.columns?.().length ?? 0) > 0,
        all: (parameters) => statement.all(...parameters),
        run: (parameters) => statement.run(...parameters),
        iterate: (parameters) => statement.iterate(...parameters),
      };
    }),
  };
}

/** The driver `openSqlite` picks here: `STARLING_SQLITE_DRIVER` if set, else node:sqlite when usable. */
export function defaultSqliteDriver(env: NodeJS.ProcessEnv = process.env): SqliteDriverName {
  const wanted = env.STARLING_SQLITE_DRIVER;
  if (wanted === 'node:sqlite' || wanted === 'better-sqlite3') return wanted;
  if (wanted !== undefined && wanted !== '') {
    throw new Error(`STARLING_SQLITE_DRIVER must be node:sqlite or better-sqlite3, not "${wanted}"`);
  }
  return builtinSqlite() === undefined ? 'better-sqlite3' : 'node:sqlite';
}

/** Opens `file` (or ':memory:') with `driver`. */
export async function openSqlite(file: string, driver = defaultSqliteDriver()): Promise<SqliteConnection> {
  if (driver === 'node:sqlite') {
    const module = builtinSqlite();
    if (module === undefined)
      throw new Error('node:sqlite is not available in this Node.js (22.16 or later has it)');
    return wrapNode(new module.DatabaseSync(file));
  }
  const { default: BetterSqlite } = await import('better-sqlite3');
  const db = new BetterSqlite(file);
  return {
    driver: 'better-sqlite3',
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
    prepare: cached((sql) => db.prepare(sql)),
  };
}
