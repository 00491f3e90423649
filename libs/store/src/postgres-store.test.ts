// PostgreSQL store: the Store contract on a real server, plus migrations, reopening, and several routers at once.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Account, RosterItem, Store } from '@starling/ports';
import { describeStoreContract, unique, waitFor } from '@starling/ports/contracts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, startPostgres, type RunningPostgres } from '../../../deploy/local/postgres.ts';
import { migrateToLatest } from './migrations.ts';
import { openPostgresStore } from './postgres-store.ts';
import type { Database } from './schema.ts';

let server: RunningPostgres | undefined;

beforeAll(async () => {
  server = await startPostgres();
});

afterAll(async () => {
  await server?.stop();
});

function serverUrl(): string {
  if (!server) throw new Error('PostgreSQL did not start');
  return server.url;
}

describeStoreContract('PostgreSQL', () => openPostgresStore(serverUrl()));

const SCRAM: Account['scram'] = {
  'SHA-1': { salt: 'c2FsdA==', iterations: 4096, storedKey: 'YQ==', serverKey: 'Yg==' },
  'SHA-256': { salt: 'c2FsdDI=', iterations: 4096, storedKey: 'Yw==', serverKey: 'ZA==' },
};

function item(jid: string, fields: Partial<RosterItem> = {}): RosterItem {
  return { jid, subscription: 'none', askOut: false, approved: false, groups: [], ...fields };
}

describe('openPostgresStore', () => {
  let stores: Store[] = [];
  let clients: pg.Client[] = [];

  afterEach(async () => {
    const [openStores, openClients] = [stores, clients];
    [stores, clients] = [[], []];
    await Promise.all([...openStores.map((s) => s.close()), ...openClients.map((c) => c.end())]);
  });

  async function open(url = serverUrl(), options?: { max?: number }): Promise<Store> {
    const store = await openPostgresStore(url, options);
    stores.push(store);
    return store;
  }

  /** A plain connection outside the store, to look at what it wrote and to hold locks against it. */
  async function raw(url = serverUrl()): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    clients.push(client);
    return client;
  }

  async function freshDatabase(): Promise<string> {
    return createDatabase(serverUrl(), unique('starling').replace('-', '_'));
  }

  /** Waits until a store connection is queued behind a lock, and returns its backend's PID and statement. */
  async function blockedStatement(observer: pg.Client): Promise<{ pid: number; query: string }> {
    let found: { pid: number; query: string } | undefined;
    await waitFor(
      async () => {
        const { rows } = await observer.query<{ pid: number; query: string }>(
          `select pid, query from pg_stat_activity
            where datname = current_database() and application_name = 'starling' and wait_event_type = 'Lock'`,
        );
        found = rows[0];
        return found !== undefined;
      },
      10_000,
      'a store statement waiting for a lock',
    );
    if (!found) throw new Error('unreachable');
    return found;
  }

  async function seed(store: Store, user: string): Promise<void> {
    await store.accounts.create({ username: user, scram: SCRAM, createdAt: 1_700_000_000_000 });
    await store.rosters.setItem(user, item('romeo@example.net', { subscription: 'both' }));
    await store.subscriptionRequests.add(user, 'paris@example.com', '<presence type="subscribe"/>');
    await store.offline.push(user, '<message/>', 1_700_000_000_001, 10);
    await store.vcards.set(user, '', '<vCard xmlns="vcard-temp"/>');
    await store.privateXml.set(user, 'storage:bookmarks', '<storage xmlns="storage:bookmarks"/>');
    await store.blocklists.add(user, ['tybalt@example.com']);
    await store.lastActivity.set(user, { at: 1_700_000_000_002, status: 'away' });
  }

  /** What the store holds for `user`, one field per table. */
  async function holdings(store: Store, user: string): Promise<Record<string, unknown>> {
    return {
      account: (await store.accounts.get(user)) !== undefined,
      roster: (await store.rosters.get(user)).items.length,
      requests: (await store.subscriptionRequests.list(user)).length,
      offline: (await store.offline.list(user)).length,
      offlineCount: await store.offline.count(user),
      vcard: (await store.vcards.get(user, '')) !== undefined,
      privateXml: (await store.privateXml.get(user, 'storage:bookmarks')) !== undefined,
      blocklist: (await store.blocklists.list(user)).length,
      lastActivity: (await store.lastActivity.get(user)) !== undefined,
    };
  }

  const EVERYTHING = {
    account: true,
    roster: 1,
    requests: 1,
    offline: 1,
    offlineCount: 1,
    vcard: true,
    privateXml: true,
    blocklist: 1,
    lastActivity: true,
  };
  const NOTHING = {
    account: false,
    roster: 0,
    requests: 0,
    offline: 0,
    offlineCount: 0,
    vcard: false,
    privateXml: false,
    blocklist: 0,
    lastActivity: false,
  };

  /** Names recorded in the database's migration table, in order. */
  async function recorded(client: pg.Client): Promise<string[]> {
    const { rows } = await client.query<{ name: string }>('select name from kysely_migration order by name');
    return rows.map((r) => r.name);
  }

  it('records its migrations, creates every table, and finds nothing to do the next time', async () => {
    const url = await freshDatabase();
    const db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
    });
    let applied: string[];
    try {
      applied = await migrateToLatest(db, 'postgres');
      expect(applied[0]).toBe('0001-create-tables');
      expect(await migrateToLatest(db, 'postgres')).toEqual([]);
    } finally {
      await db.destroy();
    }
    const client = await raw(url);
    expect(await recorded(client)).toEqual(applied);
    const tables = await client.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = 'public'",
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining([
        'accounts',
        'roster_items',
        'roster_versions',
        'subscription_requests',
        'offline_messages',
        'offline_counts',
        'user_documents',
        'blocklist',
        'last_activity',
      ]),
    );
    await open(url);
    expect(await recorded(client)).toEqual(applied);
  });

  it('migrates a fresh database once when several processes open it at the same moment', async () => {
    // Every opener must succeed: one that ran a step a second time would fail on the tables it creates.
    const url = await freshDatabase();
    const opened = await Promise.all([...Array(4).keys()].map(() => open(url, { max: 2 })));
    await open();
    expect(await recorded(await raw(url))).toEqual(await recorded(await raw()));
    const user = unique('juliet');
    expect(await opened[0]?.accounts.create({ username: user, scram: SCRAM, createdAt: 1 })).toBe(true);
    expect((await opened[3]?.accounts.get(user))?.createdAt).toBe(1);
  });

  it('keeps data across reopening and returns 64-bit columns as numbers', async () => {
    const user = unique('juliet');
    const first = await open();
    await first.accounts.create({ username: user, scram: SCRAM, createdAt: 1_700_000_000_123 });
    const version = await first.rosters.setItem(user, item('romeo@example.net', { groups: ['Verona'] }));
    await first.offline.push(user, '<message id="1"/>', 4_102_444_800_000, 10);
    await first.lastActivity.set(user, { at: 1_800_000_000_000, status: 'gone' });
    await first.close();
    stores = stores.filter((s) => s !== first);

    const second = await open();
    const account = await second.accounts.get(user);
    expect(account).toEqual({ username: user, scram: SCRAM, createdAt: 1_700_000_000_123 });
    expect(await second.rosters.get(user)).toEqual({
      version,
      items: [item('romeo@example.net', { groups: ['Verona'] })],
    });
    const [message] = await second.offline.list(user);
    expect(typeof message?.id).toBe('number');
    expect(message).toEqual({ id: message?.id, stanza: '<message id="1"/>', storedAt: 4_102_444_800_000 });
    expect(await second.lastActivity.get(user)).toEqual({ at: 1_800_000_000_000, status: 'gone' });
    expect(await second.rosters.removeItem(user, 'romeo@example.net')).toBeGreaterThan(version);
  });

  it('fails a read rather than round a 64-bit value beyond 2^53', async () => {
    const store = await open();
    const user = unique('romeo');
    const client = await raw();
    await client.query("insert into last_activity (username, at, status) values ($1, 9007199254740993, '')", [
      user,
    ]);
    await expect(store.lastActivity.get(user)).rejects.toThrow(/MAX_SAFE_INTEGER/);
  });

  it('holds the offline limit for pushes from two routers at once', async () => {
    const [a, b] = [await open(), await open()];
    const user = unique('nurse');
    const results = await Promise.all(
      [...Array(24).keys()].map((i) =>
        (i % 2 === 0 ? a : b).offline.push(user, `<message id="${i}"/>`, i, 7),
      ),
    );
    expect(results.filter((r) => r)).toHaveLength(7);
    expect(await a.offline.count(user)).toBe(7);
    const listed = await b.offline.list(user);
    expect(listed).toHaveLength(7);
    expect(new Set(listed.map((m) => m.id)).size).toBe(7);
  });

  it('gives concurrent roster changes from two routers distinct versions', async () => {
    const [a, b] = [await open(), await open()];
    const user = unique('capulet');
    const contacts = [...Array(20).keys()].map((i) => `c${i}@example.com`);
    const versions = await Promise.all(
      contacts.map((c, i) => (i % 2 === 0 ? a : b).rosters.setItem(user, item(c))),
    );
    expect(new Set(versions).size).toBe(contacts.length);
    const removed = await Promise.all([
      a.rosters.removeItem(user, 'c0@example.com'),
      b.rosters.removeItem(user, 'c1@example.com'),
    ]);
    const all = [...versions, ...removed];
    expect(new Set(all).size).toBe(contacts.length + 2);
    const roster = await a.rosters.get(user);
    expect(roster.items).toHaveLength(contacts.length - 2);
    expect(roster.version).toBe(Math.max(...all.map((v) => v ?? Number.NaN)));
  });

  it('deletes an account all at once: other routers see all of it until commit, a failed delete leaves all of it', async () => {
    const [a, b] = [await open(), await open()];
    const user = unique('tybalt');
    await seed(a, user);

    // Holding the account row makes the delete stop at its last statement, with every other table cleared.
    const holder = await raw();
    await holder.query('begin');
    await holder.query('select username from accounts where username = $1 for update', [user]);
    const deleting = a.accounts.delete(user).then(
      () => 'deleted',
      (err: unknown) => String(err),
    );
    const blocked = await blockedStatement(await raw());
    expect(blocked.query).toMatch(/^delete from "accounts"/);
    expect(await holdings(b, user)).toEqual(EVERYTHING);

    await holder.query('select pg_cancel_backend($1)', [blocked.pid]);
    expect(await deleting).toMatch(/canceling statement due to user request/);
    await holder.query('rollback');
    expect(await holdings(b, user)).toEqual(EVERYTHING);

    expect(await a.accounts.delete(user)).toBe(true);
    expect(await holdings(b, user)).toEqual(NOTHING);
  });

  // Another router's push or roster change, caught between its statements: the counter or version row
  // locked, the new message or contact written but not yet committed.
  const inFlight = {
    'an offline push': async (writer: pg.Client, user: string) => {
      await writer.query('update offline_counts set count = count + 1 where username = $1', [user]);
      await writer.query(
        `insert into offline_messages (username, stanza, stored_at) values ($1, '<message id="late"/>', 2)`,
        [user],
      );
    },
    'a roster change': async (writer: pg.Client, user: string) => {
      await writer.query(
        `insert into roster_items (username, contact, name, subscription, ask_out, approved, group_names)
         values ($1, 'late@example.com', null, 'none', 0, 0, '[]')`,
        [user],
      );
      await writer.query('update roster_versions set version = version + 1 where username = $1', [user]);
    },
  };

  for (const [name, write] of Object.entries(inFlight)) {
    it(`leaves nothing behind when a delete races with ${name} in flight on another router`, async () => {
      const [a, b] = [await open(), await open()];
      const user = unique('mercutio');
      await seed(a, user);
      const writer = await raw();
      await writer.query('begin');
      await write(writer, user);

      const deleting = a.accounts.delete(user);
      await blockedStatement(await raw());
      await writer.query('commit');
      expect(await deleting).toBe(true);

      expect(await holdings(b, user)).toEqual(NOTHING);
      expect((await b.rosters.get(user)).version).toBe(0);
    });
  }
});
