// Store contract: the promises of the port's TSDoc, run against every adapter (SQLite, PostgreSQL).
import { afterEach, describe, expect, it } from 'vitest';
import type { Account, ArchiveEntry, ArchivePage, RosterItem, Store } from '../store.ts';
import { unique } from './support.ts';

const SCRAM: Account['scram'] = {
  'SHA-1': {
    salt: 'QSXCR+Q6sek8bf92',
    iterations: 4096,
    storedKey: '6dlGYMOdZcOPutkcNY8U2g7vK9Y=',
    serverKey: 'D+CSWLOshSulAsxiupA+qs2/fTE=',
  },
  'SHA-256': {
    salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
    iterations: 4096,
    storedKey: 'WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=',
    serverKey: 'wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=',
  },
};

function account(username: string, createdAt = 1_700_000_000_123): Account {
  return { username, scram: SCRAM, createdAt };
}

function item(jid: string, fields: Partial<RosterItem> = {}): RosterItem {
  return { jid, subscription: 'none', askOut: false, approved: false, groups: [], ...fields };
}

/** The element at `index`; fails the test when there is none. */
function at<T>(list: readonly T[], index: number): T {
  const value = list[index];
  if (value === undefined) throw new Error(`expected an element at ${index} of ${list.length}`);
  return value;
}

function entry(
  id: string,
  withJid: string,
  ts: number,
  direction: ArchiveEntry['direction'] = 'in',
): ArchiveEntry {
  return { id, with: withJid, ts, direction, stanza: `<message id="${id}"><body>${id}</body></message>` };
}

/** The ids of a page's items, or 'unknown' when the query named an id the archive lacks. */
function ids(page: ArchivePage | undefined): string[] | 'unknown' {
  return page === undefined ? 'unknown' : page.items.map((item) => item.id);
}

function sortedItems(items: readonly RosterItem[]): RosterItem[] {
  return [...items]
    .map((i) => ({ ...i, groups: [...i.groups].sort() }))
    .sort((a, b) => (a.jid < b.jid ? -1 : a.jid > b.jid ? 1 : 0));
}

/**
 * Registers the Store contract tests. `create` opens a store per test; the suite closes it. Usernames are
 * unique per test, so one shared database is fine.
 */
export function describeStoreContract(name: string, create: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let open: Store[] = [];

    async function newStore(): Promise<Store> {
      const store = await create();
      open.push(store);
      return store;
    }

    afterEach(async () => {
      const pending = open;
      open = [];
      await Promise.all(pending.map((s) => s.close()));
    });

    describe('accounts', () => {
      it('creates an account once and reads it back', async () => {
        const store = await newStore();
        const username = unique('juliet');
        expect(await store.accounts.get(username)).toBeUndefined();
        expect(await store.accounts.create(account(username))).toBe(true);
        expect(await store.accounts.create(account(username, 5))).toBe(false);
        expect(await store.accounts.get(username)).toEqual(account(username));
      });

      it('replaces credentials of an existing account only', async () => {
        const store = await newStore();
        const username = unique('romeo');
        await store.accounts.create(account(username));
        const next: Account['scram'] = {
          'SHA-1': { salt: 'c2FsdA==', iterations: 10_000, storedKey: 'YQ==', serverKey: 'Yg==' },
          'SHA-256': { salt: 'c2FsdDI=', iterations: 20_000, storedKey: 'Yw==', serverKey: 'ZA==' },
        };
        expect(await store.accounts.setCredentials(username, next)).toBe(true);
        expect(await store.accounts.get(username)).toEqual({ ...account(username), scram: next });
        expect(await store.accounts.setCredentials(unique('nobody'), next)).toBe(false);
      });

      it('lists accounts and deletes one', async () => {
        const store = await newStore();
        const [a, b] = [unique('nurse'), unique('friar')];
        await store.accounts.create(account(a));
        await store.accounts.create(account(b));
        expect(await store.accounts.list()).toEqual(expect.arrayContaining([a, b]));
        expect(await store.accounts.delete(a)).toBe(true);
        expect(await store.accounts.delete(a)).toBe(false);
        expect(await store.accounts.get(a)).toBeUndefined();
        const listed = await store.accounts.list();
        expect(listed).not.toContain(a);
        expect(listed).toContain(b);
        expect(await store.accounts.create(account(a))).toBe(true);
      });

      it('delete removes everything held for the user and nothing of anybody else', async () => {
        const store = await newStore();
        const [gone, kept] = [unique('tybalt'), unique('mercutio')];
        for (const user of [gone, kept]) {
          await store.accounts.create(account(user));
          await store.rosters.setItem(user, item('capulet@example.com', { subscription: 'both' }));
          await store.subscriptionRequests.add(user, 'paris@example.com', '<presence type="subscribe"/>');
          await store.offline.push(user, '<message/>', 1, 100);
          await store.vcards.set(user, '', '<vCard xmlns="vcard-temp"/>');
          await store.privateXml.set(user, 'storage:bookmarks', '<storage xmlns="storage:bookmarks"/>');
          await store.blocklists.add(user, ['montague@example.com']);
          await store.lastActivity.set(user, { at: 42, status: 'gone' });
          await store.archive.append(user, entry('a1', 'capulet@example.com', 7));
        }
        expect(await store.accounts.delete(gone)).toBe(true);

        expect(await store.accounts.get(gone)).toBeUndefined();
        expect((await store.rosters.get(gone)).items).toEqual([]);
        expect(await store.rosters.getItem(gone, 'capulet@example.com')).toBeUndefined();
        expect(await store.subscriptionRequests.list(gone)).toEqual([]);
        expect(await store.offline.list(gone)).toEqual([]);
        expect(await store.offline.count(gone)).toBe(0);
        expect(await store.vcards.get(gone, '')).toBeUndefined();
        expect(await store.privateXml.get(gone, 'storage:bookmarks')).toBeUndefined();
        expect(await store.blocklists.list(gone)).toEqual([]);
        expect(await store.lastActivity.get(gone)).toBeUndefined();
        expect((await store.archive.query(gone, { max: 10 }))?.items).toEqual([]);

        expect(await store.accounts.get(kept)).toEqual(account(kept));
        expect((await store.rosters.get(kept)).items).toHaveLength(1);
        expect(await store.subscriptionRequests.has(kept, 'paris@example.com')).toBe(true);
        expect(await store.offline.count(kept)).toBe(1);
        expect(await store.vcards.get(kept, '')).toBe('<vCard xmlns="vcard-temp"/>');
        expect(await store.privateXml.get(kept, 'storage:bookmarks')).toBe(
          '<storage xmlns="storage:bookmarks"/>',
        );
        expect(await store.blocklists.list(kept)).toEqual(['montague@example.com']);
        expect(await store.lastActivity.get(kept)).toEqual({ at: 42, status: 'gone' });
        expect(ids(await store.archive.query(kept, { max: 10 }))).toEqual(['a1']);
      });
    });

    describe('rosters', () => {
      it('round-trips every field of an item', async () => {
        const store = await newStore();
        const user = unique('juliet');
        const full = item('romeo@example.net', {
          name: 'Ромео ♥ 羅密歐',
          subscription: 'to',
          askOut: true,
          approved: true,
          groups: ['Friends', 'Verona 🏰', 'Ünïcödé'],
        });
        const bare = item('nurse@example.com', { subscription: 'from' });
        await store.rosters.setItem(user, full);
        await store.rosters.setItem(user, bare);
        const readFull = await store.rosters.getItem(user, full.jid);
        expect(sortedItems(readFull ? [readFull] : [])).toEqual(sortedItems([full]));
        const readBare = await store.rosters.getItem(user, bare.jid);
        expect(readBare).toEqual(bare);
        expect(readBare).not.toHaveProperty('name');
        expect(sortedItems((await store.rosters.get(user)).items)).toEqual(sortedItems([full, bare]));
        expect(await store.rosters.getItem(user, 'stranger@example.org')).toBeUndefined();
      });

      it('replaces an item on a second set', async () => {
        const store = await newStore();
        const user = unique('romeo');
        await store.rosters.setItem(
          user,
          item('juliet@example.com', { name: 'J', groups: ['A'], askOut: true }),
        );
        const next = item('juliet@example.com', { subscription: 'both', groups: ['B'] });
        await store.rosters.setItem(user, next);
        expect((await store.rosters.get(user)).items).toEqual([next]);
      });

      it('increases the version with every change and reports it', async () => {
        const store = await newStore();
        const user = unique('benvolio');
        const empty = await store.rosters.get(user);
        expect(empty.items).toEqual([]);
        const versions = [empty.version];
        versions.push(await store.rosters.setItem(user, item('a@example.com')));
        versions.push(await store.rosters.setItem(user, item('b@example.com')));
        versions.push(await store.rosters.setItem(user, item('a@example.com', { subscription: 'to' })));
        const removed = await store.rosters.removeItem(user, 'b@example.com');
        expect(removed).toBeDefined();
        versions.push(removed ?? Number.NaN);
        for (let i = 1; i < versions.length; i++)
          expect(versions[i]).toBeGreaterThan(versions[i - 1] ?? Infinity);
        expect((await store.rosters.get(user)).version).toBe(versions[versions.length - 1]);
      });

      it('removeItem of an unknown contact returns undefined and keeps the version', async () => {
        const store = await newStore();
        const user = unique('paris');
        const version = await store.rosters.setItem(user, item('a@example.com'));
        expect(await store.rosters.removeItem(user, 'unknown@example.com')).toBeUndefined();
        expect(await store.rosters.removeItem(unique('nobody'), 'a@example.com')).toBeUndefined();
        expect((await store.rosters.get(user)).version).toBe(version);
      });

      it('keeps concurrent changes of one roster each on its own version', async () => {
        const store = await newStore();
        const user = unique('capulet');
        const contacts = [...Array(10).keys()].map((i) => `c${i}@example.com`);
        const versions = await Promise.all(contacts.map((c) => store.rosters.setItem(user, item(c))));
        expect(new Set(versions).size).toBe(contacts.length);
        const roster = await store.rosters.get(user);
        expect(roster.items).toHaveLength(contacts.length);
        expect(roster.version).toBe(Math.max(...versions));
      });

      it('keeps the rosters of different users apart', async () => {
        const store = await newStore();
        const [a, b] = [unique('a'), unique('b')];
        await store.rosters.setItem(a, item('x@example.com'));
        expect((await store.rosters.get(b)).items).toEqual([]);
        expect(await store.rosters.removeItem(b, 'x@example.com')).toBeUndefined();
        expect(await store.rosters.getItem(a, 'x@example.com')).toEqual(item('x@example.com'));
      });
    });

    describe('offline', () => {
      it('lists oldest first and refuses beyond the limit', async () => {
        const store = await newStore();
        const user = unique('juliet');
        for (let i = 0; i < 3; i++)
          expect(await store.offline.push(user, `<message id="${i}"/>`, 1000 + i, 3)).toBe(true);
        expect(await store.offline.push(user, '<message id="over"/>', 2000, 3)).toBe(false);
        expect(await store.offline.count(user)).toBe(3);
        const listed = await store.offline.list(user);
        expect(listed.map((m) => m.stanza)).toEqual([
          '<message id="0"/>',
          '<message id="1"/>',
          '<message id="2"/>',
        ]);
        expect(listed.map((m) => m.storedAt)).toEqual([1000, 1001, 1002]);
        expect(new Set(listed.map((m) => m.id)).size).toBe(3);
        expect(await store.offline.push(user, '<message id="more"/>', 2001, 4)).toBe(true);
        expect(await store.offline.push(user, '<message/>', 2002, 0)).toBe(false);
      });

      it('keeps the order of messages stored in the same millisecond', async () => {
        const store = await newStore();
        const user = unique('romeo');
        const stanzas = [...Array(12).keys()].map((i) => `<message id="${i}"/>`);
        for (const stanza of stanzas) await store.offline.push(user, stanza, 5, 100);
        expect((await store.offline.list(user)).map((m) => m.stanza)).toEqual(stanzas);
      });

      it('holds the limit under concurrent pushes', async () => {
        const store = await newStore();
        const user = unique('nurse');
        const results = await Promise.all(
          [...Array(12).keys()].map((i) => store.offline.push(user, `<message id="${i}"/>`, i, 5)),
        );
        expect(results.filter((r) => r)).toHaveLength(5);
        expect(await store.offline.count(user)).toBe(5);
      });

      it('removes by id, only the given ids of the given user', async () => {
        const store = await newStore();
        const [user, other] = [unique('friar'), unique('lawrence')];
        for (let i = 0; i < 4; i++) await store.offline.push(user, `<message id="${i}"/>`, i, 10);
        await store.offline.push(other, '<message id="other"/>', 1, 10);
        const ids = (await store.offline.list(user)).map((m) => m.id);
        const otherIds = (await store.offline.list(other)).map((m) => m.id);
        await store.offline.remove(user, [at(ids, 0), at(ids, 2)]);
        await store.offline.remove(user, otherIds);
        await store.offline.remove(user, []);
        expect((await store.offline.list(user)).map((m) => m.stanza)).toEqual([
          '<message id="1"/>',
          '<message id="3"/>',
        ]);
        expect(await store.offline.count(user)).toBe(2);
        expect(await store.offline.list(other)).toHaveLength(1);
        await store.offline.remove(user, [at(ids, 1), at(ids, 1)]);
        expect(await store.offline.count(user)).toBe(1);
        // Space freed by removal counts against the limit again.
        expect(await store.offline.push(user, '<message id="4"/>', 9, 2)).toBe(true);
        expect(await store.offline.push(user, '<message id="5"/>', 9, 2)).toBe(false);
      });

      it('never reuses the id of a removed message', async () => {
        const store = await newStore();
        const user = unique('balthasar');
        await store.offline.push(user, '<message id="a"/>', 1, 10);
        const first = at(await store.offline.list(user), 0);
        await store.offline.remove(user, [first.id]);
        await store.offline.push(user, '<message id="b"/>', 2, 10);
        const second = at(await store.offline.list(user), 0);
        expect(second.stanza).toBe('<message id="b"/>');
        expect(second.id).not.toBe(first.id);
      });
    });

    describe('archive', () => {
      /** Five entries: two with romeo, then nurse, romeo, nurse; e2 and e3 share a millisecond. */
      async function fill(store: Store, user: string): Promise<void> {
        await store.archive.append(user, entry('e1', 'romeo@example.net', 1000, 'in'));
        await store.archive.append(user, entry('e2', 'romeo@example.net', 2000, 'out'));
        await store.archive.append(user, entry('e3', 'nurse@example.com', 2000, 'in'));
        await store.archive.append(user, entry('e4', 'romeo@example.net', 3000, 'in'));
        await store.archive.append(user, entry('e5', 'nurse@example.com', 4000, 'out'));
      }

      it('appends many at once, in order, each once per id', async () => {
        const store = await newStore();
        const [user, other] = [unique('juliet'), unique('romeo')];
        await store.archive.append(user, entry('m0', 'nurse@example.com', 10));
        await store.archive.appendMany([
          { username: user, entry: entry('m1', 'romeo@example.net', 20, 'out') },
          { username: other, entry: entry('m1', 'juliet@example.com', 20, 'in') },
          { username: user, entry: entry('m0', 'nurse@example.com', 99) },
          { username: user, entry: entry('m2', 'romeo@example.net', 20) },
          { username: user, entry: entry('m2', 'romeo@example.net', 30) },
        ]);
        // The repeated m0 and m2 are left out; each first entry stays as it was.
        const page = await store.archive.query(user, { max: 10 });
        expect(page?.items).toEqual([
          entry('m0', 'nurse@example.com', 10),
          entry('m1', 'romeo@example.net', 20, 'out'),
          entry('m2', 'romeo@example.net', 20),
        ]);
        expect((await store.archive.query(other, { max: 10 }))?.items).toEqual([
          entry('m1', 'juliet@example.com', 20, 'in'),
        ]);
        await store.archive.appendMany([]);
        expect(await store.archive.query(user, { max: 0 })).toMatchObject({ count: 3 });
      });

      it('appends once per id, and reads entries back whole, oldest first', async () => {
        const store = await newStore();
        const [user, other] = [unique('juliet'), unique('romeo')];
        const first = entry('x1', 'romeo@example.net', 1_700_000_000_123, 'out');
        await store.archive.append(user, first);
        await store.archive.append(user, { ...first, stanza: '<message/>', ts: 5 });
        await store.archive.append(other, first);
        await store.archive.append(user, entry('x0', 'nurse@example.com', 1_600_000_000_000));
        expect(await store.archive.query(user, { max: 10 })).toEqual({
          items: [entry('x0', 'nurse@example.com', 1_600_000_000_000), first],
          complete: true,
          first: 'x0',
          last: 'x1',
          count: 2,
        });
        expect((await store.archive.query(other, { max: 10 }))?.items).toEqual([first]);
        expect(await store.archive.query(unique('nobody'), { max: 10 })).toEqual({
          items: [],
          complete: true,
          count: 0,
        });
      });

      it('pages forward with after, and keeps entries of one millisecond in append order', async () => {
        const store = await newStore();
        const user = unique('juliet');
        await fill(store, user);
        const one = await store.archive.query(user, { max: 2 });
        expect(ids(one)).toEqual(['e1', 'e2']);
        expect(one).toMatchObject({ complete: false, first: 'e1', last: 'e2', count: 5 });
        const two = await store.archive.query(user, { max: 2, after: 'e2' });
        expect(ids(two)).toEqual(['e3', 'e4']);
        expect(two).toMatchObject({ complete: false, count: 5 });
        const three = await store.archive.query(user, { max: 2, after: 'e4' });
        expect(ids(three)).toEqual(['e5']);
        expect(three?.complete).toBe(true);
        const past = await store.archive.query(user, { max: 2, after: 'e5' });
        expect(past).toEqual({ items: [], complete: true, count: 5 });
      });

      it('pages backward with before, from the newest end with an empty before', async () => {
        const store = await newStore();
        const user = unique('juliet');
        await fill(store, user);
        const last = await store.archive.query(user, { max: 2, before: '' });
        expect(ids(last)).toEqual(['e4', 'e5']);
        expect(last).toMatchObject({ complete: false, first: 'e4', last: 'e5', count: 5 });
        const middle = await store.archive.query(user, { max: 2, before: 'e4' });
        expect(ids(middle)).toEqual(['e2', 'e3']);
        expect(middle?.complete).toBe(false);
        const oldest = await store.archive.query(user, { max: 2, before: 'e2' });
        expect(ids(oldest)).toEqual(['e1']);
        expect(oldest?.complete).toBe(true);
        // Both cursors: what lies between them, taken from the newest end.
        expect(ids(await store.archive.query(user, { max: 1, after: 'e1', before: 'e4' }))).toEqual(['e3']);
      });

      it('filters by with, start, end, afterId, beforeId and ids, and counts what the filters match', async () => {
        const store = await newStore();
        const user = unique('juliet');
        await fill(store, user);
        const romeo = await store.archive.query(user, { max: 10, with: 'romeo@example.net' });
        expect(ids(romeo)).toEqual(['e1', 'e2', 'e4']);
        expect(romeo?.count).toBe(3);
        const paged = await store.archive.query(user, { max: 1, with: 'romeo@example.net', after: 'e2' });
        expect(ids(paged)).toEqual(['e4']);
        expect(paged).toMatchObject({ complete: true, count: 3 });
        expect(ids(await store.archive.query(user, { max: 10, start: 2000, end: 3000 }))).toEqual([
          'e2',
          'e3',
          'e4',
        ]);
        expect(ids(await store.archive.query(user, { max: 10, end: 1999 }))).toEqual(['e1']);
        const between = await store.archive.query(user, { max: 10, afterId: 'e1', beforeId: 'e5' });
        expect(ids(between)).toEqual(['e2', 'e3', 'e4']);
        expect(between?.count).toBe(3);
        expect(ids(await store.archive.query(user, { max: 10, ids: ['e4', 'e1', 'e4'] }))).toEqual([
          'e1',
          'e4',
        ]);
        expect(
          ids(await store.archive.query(user, { max: 10, with: 'nurse@example.com', start: 3000 })),
        ).toEqual(['e5']);
      });

      it('answers only the count and whether anything matches when max is 0', async () => {
        const store = await newStore();
        const user = unique('juliet');
        await fill(store, user);
        expect(await store.archive.query(user, { max: 0 })).toEqual({ items: [], complete: false, count: 5 });
        expect(await store.archive.query(user, { max: 0, start: 9000 })).toEqual({
          items: [],
          complete: true,
          count: 0,
        });
      });

      it('refuses ids the archive does not hold, also those of another user', async () => {
        const store = await newStore();
        const [user, other] = [unique('juliet'), unique('romeo')];
        await fill(store, user);
        await store.archive.append(other, entry('theirs', 'juliet@example.com', 1500));
        for (const query of [
          { after: 'nope' },
          { before: 'nope' },
          { afterId: 'theirs' },
          { beforeId: 'nope' },
          { ids: ['e1', 'nope'] },
        ]) {
          expect(await store.archive.query(user, { max: 10, ...query })).toBeUndefined();
        }
      });

      it('removeAll empties one archive and leaves the others', async () => {
        const store = await newStore();
        const [user, other] = [unique('juliet'), unique('romeo')];
        await fill(store, user);
        await fill(store, other);
        await store.archive.removeAll(user);
        expect(ids(await store.archive.query(user, { max: 10 }))).toEqual([]);
        expect(ids(await store.archive.query(other, { max: 10 }))).toHaveLength(5);
        // The ids are free again in the emptied archive.
        await store.archive.append(user, entry('e1', 'romeo@example.net', 1));
        expect(await store.archive.query(user, { max: 10 })).toMatchObject({
          items: [entry('e1', 'romeo@example.net', 1)],
        });
      });
    });

    describe('per-user XML documents', () => {
      for (const which of ['vcards', 'privateXml'] as const) {
        it(`${which}: get, set, replace and delete by key`, async () => {
          const store = await newStore();
          const docs = store[which];
          const user = unique('juliet');
          expect(await docs.get(user, '')).toBeUndefined();
          await docs.set(user, '', '<vCard xmlns="vcard-temp"><FN>Juliet Capulet ♥</FN></vCard>');
          await docs.set(user, 'storage:rosternotes', '<storage xmlns="storage:rosternotes"/>');
          expect(await docs.get(user, '')).toBe(
            '<vCard xmlns="vcard-temp"><FN>Juliet Capulet ♥</FN></vCard>',
          );
          await docs.set(user, '', '<vCard xmlns="vcard-temp"/>');
          expect(await docs.get(user, '')).toBe('<vCard xmlns="vcard-temp"/>');
          await docs.delete(user, '');
          expect(await docs.get(user, '')).toBeUndefined();
          expect(await docs.get(user, 'storage:rosternotes')).toBe('<storage xmlns="storage:rosternotes"/>');
          expect(await docs.get(unique('other'), 'storage:rosternotes')).toBeUndefined();
          await docs.delete(user, 'never-set');
        });
      }

      it('keeps vCards and private XML apart', async () => {
        const store = await newStore();
        const user = unique('romeo');
        await store.vcards.set(user, '', '<vCard xmlns="vcard-temp"/>');
        expect(await store.privateXml.get(user, '')).toBeUndefined();
        await store.privateXml.set(user, '', '<private/>');
        await store.privateXml.delete(user, '');
        expect(await store.vcards.get(user, '')).toBe('<vCard xmlns="vcard-temp"/>');
      });
    });

    describe('blocklists', () => {
      it('adds idempotently, lists, removes some and removes all', async () => {
        const store = await newStore();
        const user = unique('juliet');
        expect(await store.blocklists.list(user)).toEqual([]);
        await store.blocklists.add(user, ['tybalt@example.com', 'paris@example.com']);
        await store.blocklists.add(user, [
          'paris@example.com',
          'example.org',
          'rosaline@example.net/r',
          'example.org',
        ]);
        const all = ['example.org', 'paris@example.com', 'rosaline@example.net/r', 'tybalt@example.com'];
        expect([...(await store.blocklists.list(user))].sort()).toEqual(all);
        await store.blocklists.add(user, []);
        await store.blocklists.remove(user, []);
        expect(await store.blocklists.list(user)).toHaveLength(4);
        await store.blocklists.remove(user, ['paris@example.com', 'never@example.com']);
        expect([...(await store.blocklists.list(user))].sort()).toEqual(
          all.filter((j) => j !== 'paris@example.com'),
        );
        const other = unique('romeo');
        await store.blocklists.add(other, ['tybalt@example.com']);
        await store.blocklists.remove(user);
        expect(await store.blocklists.list(user)).toEqual([]);
        expect(await store.blocklists.list(other)).toEqual(['tybalt@example.com']);
      });
    });

    describe('last activity', () => {
      it('stores and replaces the last logout', async () => {
        const store = await newStore();
        const user = unique('romeo');
        expect(await store.lastActivity.get(user)).toBeUndefined();
        await store.lastActivity.set(user, { at: 1_700_000_000_000, status: '' });
        expect(await store.lastActivity.get(user)).toEqual({ at: 1_700_000_000_000, status: '' });
        await store.lastActivity.set(user, {
          at: 1_800_000_000_000,
          status: 'Parting is such sweet sorrow ☾',
        });
        expect(await store.lastActivity.get(user)).toEqual({
          at: 1_800_000_000_000,
          status: 'Parting is such sweet sorrow ☾',
        });
      });
    });

    describe('subscription requests', () => {
      it('adds (replacing), checks, lists and removes', async () => {
        const store = await newStore();
        const user = unique('juliet');
        expect(await store.subscriptionRequests.has(user, 'romeo@example.net')).toBe(false);
        await store.subscriptionRequests.add(user, 'romeo@example.net', '<presence type="subscribe"/>');
        await store.subscriptionRequests.add(
          user,
          'paris@example.com',
          '<presence type="subscribe" id="p"/>',
        );
        await store.subscriptionRequests.add(
          user,
          'romeo@example.net',
          '<presence type="subscribe"><status>2</status></presence>',
        );
        expect(await store.subscriptionRequests.has(user, 'romeo@example.net')).toBe(true);
        const listed = [...(await store.subscriptionRequests.list(user))].sort((a, b) =>
          a.contact < b.contact ? -1 : 1,
        );
        expect(listed).toEqual([
          { contact: 'paris@example.com', stanza: '<presence type="subscribe" id="p"/>' },
          {
            contact: 'romeo@example.net',
            stanza: '<presence type="subscribe"><status>2</status></presence>',
          },
        ]);
        expect(await store.subscriptionRequests.remove(user, 'romeo@example.net')).toBe(true);
        expect(await store.subscriptionRequests.remove(user, 'romeo@example.net')).toBe(false);
        expect(await store.subscriptionRequests.has(user, 'romeo@example.net')).toBe(false);
        expect(await store.subscriptionRequests.list(user)).toEqual([
          { contact: 'paris@example.com', stanza: '<presence type="subscribe" id="p"/>' },
        ]);
        expect(await store.subscriptionRequests.list(unique('other'))).toEqual([]);
      });
    });
  });
}
