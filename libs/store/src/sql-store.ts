// Store over SQL (Kysely): every sub-store of the port, in queries that run unchanged on SQLite and PostgreSQL.
import {
  CompiledQuery,
  type Compilable,
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type SqlBool,
} from 'kysely';
import type {
  Account,
  AccountStore,
  ArchiveDirection,
  ArchiveEntry,
  ArchiveQuery,
  ArchiveStore,
  BlocklistStore,
  LastActivityStore,
  OfflineStore,
  RosterItem,
  RosterStore,
  Store,
  SubscriptionRequestStore,
  Subscription,
  XmlStore,
} from '@starling/ports';
import type { Database, RosterItemsTable, UserDocumentKind } from './schema.ts';

// Keeps each statement far below the bound-parameter limits of both dialects.
const CHUNK = 500;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/**
 * A read whose one parameter is the username, compiled on its first run and then run as SQL text:
 * building and compiling a Kysely query costs more than running one of these small reads, and a login
 * makes several of them.
 */
function perUserRead<R>(
  db: Kysely<Database>,
  build: (username: string) => Compilable<R>,
): (username: string) => Promise<R[]> {
  let text: string | undefined;
  return async (username) => {
    if (text === undefined) {
      const compiled = build(username).compile();
      if (compiled.parameters.length !== 1 || compiled.parameters[0] !== username) {
        throw new Error('a per-user read takes the username as its one parameter');
      }
      text = compiled.sql;
    }
    const { rows } = await db.executeQuery<R>(CompiledQuery.raw(text, [username]));
    return rows;
  };
}

function toRosterItem(row: Omit<RosterItemsTable, 'username'>): RosterItem {
  const item: RosterItem = {
    jid: row.contact,
    subscription: row.subscription as Subscription,
    askOut: row.ask_out === 1,
    approved: row.approved === 1,
    groups: JSON.parse(row.group_names) as string[],
  };
  return row.name === null ? item : { ...item, name: row.name };
}

/** Tables holding per-user data, in the order an account deletion clears them. */
const USER_TABLES = [
  'roster_items',
  'roster_versions',
  'subscription_requests',
  'offline_messages',
  'offline_counts',
  'user_documents',
  'blocklist',
  'last_activity',
  'archive',
] as const;

/**
 * Tables an account deletion clears a second time. A roster change or offline push running at the same time
 * in another process (PostgreSQL, read committed) has written its row, invisible to the first pass, and
 * holds the version or counter row that the deletion then waits for; once the deletion gets that row the
 * writer has committed, and a fresh statement sees its row. Without this pass the user would be left with
 * a contact but no roster version, or a message the counter does not count.
 */
const RACED_TABLES = ['roster_items', 'offline_messages'] as const;

/**
 * The accounts. With `separateArchive` (an archive in a database of its own) a deletion empties that
 * archive after its transaction, also when the account is gone already, so that retrying a deletion
 * interrupted between the two finishes it.
 */
function accountStore(db: Kysely<Database>, separateArchive?: ArchiveStore): AccountStore {
  const account = perUserRead(db, (username) =>
    db.selectFrom('accounts').select(['scram', 'created_at']).where('username', '=', username),
  );
  const tables = [...USER_TABLES, ...RACED_TABLES].filter(
    (table) => separateArchive === undefined || table !== 'archive',
  );
  return {
    async create(account: Account) {
      const inserted = await db
        .insertInto('accounts')
        .values({
          username: account.username,
          scram: JSON.stringify(account.scram),
          created_at: account.createdAt,
        })
        .onConflict((oc) => oc.column('username').doNothing())
        .returning('username')
        .executeTakeFirst();
      return inserted !== undefined;
    },

    async get(username) {
      const [row] = await account(username);
      if (!row) return undefined;
      return {
        username,
        scram: JSON.parse(row.scram) as Account['scram'],
        createdAt: Number(row.created_at),
      };
    },

    async setCredentials(username, scram) {
      const result = await db
        .updateTable('accounts')
        .set({ scram: JSON.stringify(scram) })
        .where('username', '=', username)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },

    async delete(username) {
      const deleted = await db.transaction().execute(async (trx) => {
        for (const table of tables) {
          await trx.deleteFrom(table).where('username', '=', username).execute();
        }
        const result = await trx.deleteFrom('accounts').where('username', '=', username).executeTakeFirst();
        return result.numDeletedRows > 0n;
      });
      await separateArchive?.removeAll(username);
      return deleted;
    },

    async list() {
      const rows = await db.selectFrom('accounts').select('username').orderBy('username').execute();
      return rows.map((r) => r.username);
    },
  };
}

async function bumpRosterVersion(db: Kysely<Database>, username: string): Promise<number> {
  const row = await db
    .insertInto('roster_versions')
    .values({ username, version: 1 })
    .onConflict((oc) =>
      oc.column('username').doUpdateSet((eb) => ({ version: eb('roster_versions.version', '+', 1) })),
    )
    .returning('version')
    .executeTakeFirstOrThrow();
  return row.version;
}

function rosterStore(db: Kysely<Database>): RosterStore {
  const version = perUserRead(db, (username) =>
    db.selectFrom('roster_versions').select('version').where('username', '=', username),
  );
  const items = perUserRead(db, (username) =>
    db
      .selectFrom('roster_items')
      .select(['contact', 'name', 'subscription', 'ask_out', 'approved', 'group_names'])
      .where('username', '=', username)
      .orderBy('contact'),
  );
  return {
    async get(username) {
      // Version before items: a change landing in between then pairs newer items with an older version,
      // which only makes the client ask again; the other order would let it cache stale items as current.
      const [versionRow] = await version(username);
      const rows = await items(username);
      return { version: versionRow?.version ?? 0, items: rows.map(toRosterItem) };
    },

    async getItem(username, contact) {
      const row = await db
        .selectFrom('roster_items')
        .select(['contact', 'name', 'subscription', 'ask_out', 'approved', 'group_names'])
        .where('username', '=', username)
        .where('contact', '=', contact)
        .executeTakeFirst();
      return row && toRosterItem(row);
    },

    setItem(username, item) {
      const fields = {
        name: item.name ?? null,
        subscription: item.subscription,
        ask_out: item.askOut ? 1 : 0,
        approved: item.approved ? 1 : 0,
        group_names: JSON.stringify(item.groups),
      } as const;
      return db.transaction().execute(async (trx) => {
        await trx
          .insertInto('roster_items')
          .values({ username, contact: item.jid, ...fields })
          .onConflict((oc) => oc.columns(['username', 'contact']).doUpdateSet(fields))
          .execute();
        return bumpRosterVersion(trx, username);
      });
    },

    removeItem(username, contact) {
      return db.transaction().execute(async (trx) => {
        const result = await trx
          .deleteFrom('roster_items')
          .where('username', '=', username)
          .where('contact', '=', contact)
          .executeTakeFirst();
        return result.numDeletedRows > 0n ? bumpRosterVersion(trx, username) : undefined;
      });
    },
  };
}

function subscriptionRequestStore(db: Kysely<Database>): SubscriptionRequestStore {
  const list = perUserRead(db, (username) =>
    db
      .selectFrom('subscription_requests')
      .select(['contact', 'stanza'])
      .where('username', '=', username)
      .orderBy('contact'),
  );
  return {
    async add(username, contact, stanza) {
      await db
        .insertInto('subscription_requests')
        .values({ username, contact, stanza })
        .onConflict((oc) => oc.columns(['username', 'contact']).doUpdateSet({ stanza }))
        .execute();
    },

    async remove(username, contact) {
      const result = await db
        .deleteFrom('subscription_requests')
        .where('username', '=', username)
        .where('contact', '=', contact)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    },

    async has(username, contact) {
      const row = await db
        .selectFrom('subscription_requests')
        .select('contact')
        .where('username', '=', username)
        .where('contact', '=', contact)
        .executeTakeFirst();
      return row !== undefined;
    },

    list,
  };
}

function offlineStore(db: Kysely<Database>): OfflineStore {
  const list = perUserRead(db, (username) =>
    db
      .selectFrom('offline_messages')
      .select(['id', 'stanza', 'stored_at'])
      .where('username', '=', username)
      .orderBy('id'),
  );
  const count = perUserRead(db, (username) =>
    db.selectFrom('offline_counts').select('count').where('username', '=', username),
  );
  return {
    async push(username, stanza, storedAt, limit) {
      if (limit <= 0) return false;
      return db.transaction().execute(async (trx) => {
        // Taking a slot locks the user's counter row, so concurrent pushes cannot both pass the check
        // (a count(*) followed by an insert could, under PostgreSQL's read committed).
        const slot = await trx
          .insertInto('offline_counts')
          .values({ username, count: 1 })
          .onConflict((oc) =>
            oc
              .column('username')
              .doUpdateSet((eb) => ({ count: eb('offline_counts.count', '+', 1) }))
              .where('offline_counts.count', '<', limit),
          )
          .returning('count')
          .executeTakeFirst();
        if (!slot) return false;
        await trx.insertInto('offline_messages').values({ username, stanza, stored_at: storedAt }).execute();
        return true;
      });
    },

    async list(username) {
      const rows = await list(username);
      return rows.map((r) => ({ id: Number(r.id), stanza: r.stanza, storedAt: Number(r.stored_at) }));
    },

    async remove(username, ids) {
      if (ids.length === 0) return;
      await db.transaction().execute(async (trx) => {
        let removed = 0n;
        for (const chunk of chunks(ids)) {
          const result = await trx
            .deleteFrom('offline_messages')
            .where('username', '=', username)
            .where('id', 'in', chunk)
            .executeTakeFirst();
          removed += result.numDeletedRows;
        }
        if (removed === 0n) return;
        await trx
          .updateTable('offline_counts')
          .set((eb) => ({ count: eb('count', '-', Number(removed)) }))
          .where('username', '=', username)
          .execute();
      });
    },

    async count(username) {
      const [row] = await count(username);
      return row?.count ?? 0;
    },
  };
}

function xmlStore(db: Kysely<Database>, kind: UserDocumentKind): XmlStore {
  return {
    async get(username, key) {
      const row = await db
        .selectFrom('user_documents')
        .select('xml')
        .where('username', '=', username)
        .where('kind', '=', kind)
        .where('key', '=', key)
        .executeTakeFirst();
      return row?.xml;
    },

    async set(username, key, xml) {
      await db
        .insertInto('user_documents')
        .values({ username, kind, key, xml })
        .onConflict((oc) => oc.columns(['username', 'kind', 'key']).doUpdateSet({ xml }))
        .execute();
    },

    async delete(username, key) {
      await db
        .deleteFrom('user_documents')
        .where('username', '=', username)
        .where('kind', '=', kind)
        .where('key', '=', key)
        .execute();
    },
  };
}

function blocklistStore(db: Kysely<Database>): BlocklistStore {
  const list = perUserRead(db, (username) =>
    db.selectFrom('blocklist').select('jid').where('username', '=', username).orderBy('jid'),
  );
  return {
    async list(username) {
      const rows = await list(username);
      return rows.map((r) => r.jid);
    },

    async add(username, jids) {
      const distinct = [...new Set(jids)];
      if (distinct.length === 0) return;
      await db.transaction().execute(async (trx) => {
        for (const chunk of chunks(distinct)) {
          await trx
            .insertInto('blocklist')
            .values(chunk.map((jid) => ({ username, jid })))
            .onConflict((oc) => oc.columns(['username', 'jid']).doNothing())
            .execute();
        }
      });
    },

    async remove(username, jids) {
      if (jids === undefined) {
        await db.deleteFrom('blocklist').where('username', '=', username).execute();
        return;
      }
      if (jids.length === 0) return;
      await db.transaction().execute(async (trx) => {
        for (const chunk of chunks(jids)) {
          await trx
            .deleteFrom('blocklist')
            .where('username', '=', username)
            .where('jid', 'in', chunk)
            .execute();
        }
      });
    },
  };
}

function lastActivityStore(db: Kysely<Database>): LastActivityStore {
  const activity = perUserRead(db, (username) =>
    db.selectFrom('last_activity').select(['at', 'status']).where('username', '=', username),
  );
  return {
    async get(username) {
      const [row] = await activity(username);
      return row && { at: Number(row.at), status: row.status };
    },

    async set(username, activity) {
      await db
        .insertInto('last_activity')
        .values({ username, at: activity.at, status: activity.status })
        .onConflict((oc) => oc.column('username').doUpdateSet({ at: activity.at, status: activity.status }))
        .execute();
    },
  };
}

/** Where an entry sits in its archive's order. */
interface ArchivePosition {
  readonly ts: number;
  readonly seq: number;
}

type ArchiveExpressions = ExpressionBuilder<Database, 'archive'>;

function laterThan(eb: ArchiveExpressions, position: ArchivePosition): Expression<SqlBool> {
  return eb(eb.refTuple('ts', 'seq'), '>', eb.tuple(position.ts, position.seq));
}

function earlierThan(eb: ArchiveExpressions, position: ArchivePosition): Expression<SqlBool> {
  return eb(eb.refTuple('ts', 'seq'), '<', eb.tuple(position.ts, position.seq));
}

/** The archive over `db`, which holds its table (the store's database, or a file of its own). */
export function createSqlArchive(db: Kysely<Database>): ArchiveStore {
  /** The positions of `ids` in the user's archive; undefined if any is missing. */
  async function positions(
    username: string,
    ids: readonly string[],
  ): Promise<Map<string, ArchivePosition> | undefined> {
    const wanted = [...new Set(ids)];
    const found = new Map<string, ArchivePosition>();
    for (const chunk of chunks(wanted)) {
      const rows = await db
        .selectFrom('archive')
        .select(['id', 'ts', 'seq'])
        .where('username', '=', username)
        .where('id', 'in', chunk)
        .execute();
      for (const row of rows) found.set(row.id, { ts: Number(row.ts), seq: Number(row.seq) });
    }
    return found.size === wanted.length ? found : undefined;
  }

  // The archive's multi-row insert, compiled once per row count: building and compiling the query took
  // longer than running it did, for the small batches a busy server writes many times a second.
  const archiveInserts = new Map<number, string>();

  function insertArchiveRows(
    chunk: readonly { readonly username: string; readonly entry: ArchiveEntry }[],
  ): Promise<unknown> {
    const parameters: unknown[] = [];
    for (const { username, entry } of chunk) {
      parameters.push(username, entry.id, entry.with, entry.ts, entry.direction, entry.stanza);
    }
    let text = archiveInserts.get(chunk.length);
    if (text === undefined) {
      const query = db
        .insertInto('archive')
        .values(
          chunk.map(({ username, entry }) => ({
            username,
            id: entry.id,
            with_jid: entry.with,
            ts: entry.ts,
            direction: entry.direction,
            stanza: entry.stanza,
          })),
        )
        .onConflict((oc) => oc.columns(['username', 'id']).doNothing())
        .compile();
      // The parameters above must be in the order the dialect compiled them.
      const same =
        query.parameters.length === parameters.length &&
        query.parameters.every((value, index) => value === parameters[index]);
      if (!same) throw new Error('archive insert: parameters compiled in an unexpected order');
      text = query.sql;
      archiveInserts.set(chunk.length, text);
    }
    return db.executeQuery(CompiledQuery.raw(text, parameters));
  }

  async function appendMany(
    entries: readonly { readonly username: string; readonly entry: ArchiveEntry }[],
  ): Promise<void> {
    for (const chunk of chunks(entries)) await insertArchiveRows(chunk);
  }

  return {
    append: (username, entry) => appendMany([{ username, entry }]),

    appendMany,

    async query(username, query: ArchiveQuery) {
      if (query.ids?.length === 0) return { items: [], complete: true, count: 0 };
      const named = [query.afterId, query.beforeId, query.after, query.before].filter(
        (id): id is string => id !== undefined && id !== '',
      );
      const known = await positions(username, named);
      if (known === undefined) return undefined;
      if (query.ids !== undefined && (await positions(username, query.ids)) === undefined) return undefined;
      const at = (id: string): ArchivePosition => known.get(id) as ArchivePosition;

      // The filters: what `count` covers and what every page is cut from.
      const filters = (eb: ArchiveExpressions): Expression<SqlBool> => {
        const all: Expression<SqlBool>[] = [eb('username', '=', username)];
        if (query.with !== undefined) all.push(eb('with_jid', '=', query.with));
        if (query.start !== undefined) all.push(eb('ts', '>=', query.start));
        if (query.end !== undefined) all.push(eb('ts', '<=', query.end));
        if (query.afterId !== undefined) all.push(laterThan(eb, at(query.afterId)));
        if (query.beforeId !== undefined) all.push(earlierThan(eb, at(query.beforeId)));
        if (query.ids !== undefined) all.push(eb('id', 'in', query.ids));
        return eb.and(all);
      };

      let page = db
        .selectFrom('archive')
        .select(['id', 'with_jid', 'ts', 'direction', 'stanza'])
        .where(filters);
      const { after, before } = query;
      if (after !== undefined) page = page.where((eb) => laterThan(eb, at(after)));
      if (before !== undefined && before !== '') page = page.where((eb) => earlierThan(eb, at(before)));
      const direction = before === undefined ? 'asc' : 'desc';
      // One row past the page tells whether the page reaches the end.
      const rows = await page
        .orderBy('ts', direction)
        .orderBy('seq', direction)
        .limit(query.max + 1)
        .execute();
      const complete = rows.length <= query.max;
      const kept = rows.slice(0, query.max);
      if (direction === 'desc') kept.reverse();
      const items = kept.map((row): ArchiveEntry => ({
        id: row.id,
        with: row.with_jid,
        ts: Number(row.ts),
        stanza: row.stanza,
        direction: row.direction as ArchiveDirection,
      }));
      const counted = await db
        .selectFrom('archive')
        .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
        .where(filters)
        .executeTakeFirstOrThrow();

      const first = items[0];
      const last = items[items.length - 1];
      return {
        items,
        complete,
        count: Number(counted.n),
        ...(first && { first: first.id }),
        ...(last && { last: last.id }),
      };
    },

    async removeAll(username) {
      await db.deleteFrom('archive').where('username', '=', username).execute();
    },
  };
}

/** An archive kept apart from the store's database, which the store closes with its own. */
export interface SeparateArchive extends ArchiveStore {
  close(): Promise<void>;
}

/**
 * The Store over an already migrated database (see `migrateToLatest`). The store owns `db`: its
 * `close()` destroys it. Usernames and JIDs are used as given; callers prepare them. With `archive`, the
 * archives are there instead of in `db`'s table, and the store owns and closes it too.
 */
export function createSqlStore(db: Kysely<Database>, archive?: SeparateArchive): Store {
  return {
    accounts: accountStore(db, archive),
    rosters: rosterStore(db),
    subscriptionRequests: subscriptionRequestStore(db),
    offline: offlineStore(db),
    vcards: xmlStore(db, 'vcard'),
    privateXml: xmlStore(db, 'private'),
    blocklists: blocklistStore(db),
    lastActivity: lastActivityStore(db),
    archive: archive ?? createSqlArchive(db),
    async close() {
      try {
        await archive?.close();
      } finally {
        await db.destroy();
      }
    },
  };
}
