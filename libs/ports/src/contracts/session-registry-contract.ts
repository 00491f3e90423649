// SessionRegistry contract: the promises of the port's TSDoc, run against every adapter (memory, Redis).
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionRecord, SessionRegistry } from '../session-registry.ts';
import { unique, waitFor } from './support.ts';

function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash === -1 ? jid : jid.slice(0, slash);
}

function session(jid: string, sessionId: string, edgeId = 'edge-1'): SessionRecord {
  return {
    jid,
    sessionId,
    edgeId,
    boundAt: 1_700_000_000_000,
    priority: 0,
    available: false,
    interested: false,
  };
}

function byJid(records: readonly SessionRecord[]): SessionRecord[] {
  return [...records].sort((a, b) => (a.jid < b.jid ? -1 : a.jid > b.jid ? 1 : 0));
}

/**
 * Registers the SessionRegistry contract tests. `create` opens a registry per test; the suite closes it.
 * JIDs are unique per test, so a shared Redis is fine.
 */
export function describeSessionRegistryContract(name: string, create: () => Promise<SessionRegistry>): void {
  describe(`SessionRegistry contract: ${name}`, () => {
    let open: SessionRegistry[] = [];

    async function newRegistry(): Promise<SessionRegistry> {
      const registry = await create();
      open.push(registry);
      return registry;
    }

    afterEach(async () => {
      const pending = open;
      open = [];
      await Promise.all(pending.map((r) => r.close()));
    });

    it('binds a full JID and reads it back', async () => {
      const registry = await newRegistry();
      const bare = `${unique('juliet')}@example.com`;
      const record: SessionRecord = {
        ...session(`${bare}/balcony`, unique('s'), unique('edge')),
        priority: -3,
        available: true,
        interested: true,
        presence: '<presence><status>¿dónde estás? ☾</status></presence>',
        directed: ['romeo@example.net/orchard', 'nurse@example.com'],
      };
      expect(await registry.bind(record)).toBeUndefined();
      expect(await registry.get(record.jid)).toEqual(record);
      expect(await registry.get(`${bare}/other`)).toBeUndefined();
    });

    it('bind replaces the session of the same full JID and returns the replaced record', async () => {
      const registry = await newRegistry();
      const jid = `${unique('romeo')}@example.net/orchard`;
      const first = session(jid, unique('s1'), 'edge-a');
      const second = session(jid, unique('s2'), 'edge-b');
      await registry.bind(first);
      expect(await registry.bind(second)).toEqual(first);
      expect(await registry.get(jid)).toEqual(second);
      const resources = await registry.resources(jid.slice(0, jid.indexOf('/')));
      expect(resources).toEqual([second]);
    });

    it('unbind removes the binding only for the session that holds it', async () => {
      const registry = await newRegistry();
      const jid = `${unique('nurse')}@example.com/chamber`;
      const record = session(jid, unique('s'));
      await registry.bind(record);
      expect(await registry.unbind(jid, unique('stale'))).toBeUndefined();
      expect(await registry.get(jid)).toEqual(record);
      expect(await registry.unbind(jid, record.sessionId)).toEqual(record);
      expect(await registry.get(jid)).toBeUndefined();
      expect(await registry.resources(jid.slice(0, jid.indexOf('/')))).toEqual([]);
      expect(await registry.unbind(jid, record.sessionId)).toBeUndefined();
    });

    it('unbind with the session id of a replaced session leaves the new one', async () => {
      const registry = await newRegistry();
      const jid = `${unique('tybalt')}@example.com/street`;
      const old = session(jid, unique('old'));
      const current = session(jid, unique('new'));
      await registry.bind(old);
      await registry.bind(current);
      expect(await registry.unbind(jid, old.sessionId)).toBeUndefined();
      expect(await registry.get(jid)).toEqual(current);
    });

    it('resources lists every session of a bare JID and nothing of JIDs sharing its prefix', async () => {
      const registry = await newRegistry();
      const local = unique('mercutio');
      const bare = `${local}@example.com`;
      const mine = [
        session(`${bare}/a`, unique('s')),
        session(`${bare}/b`, unique('s'), 'edge-2'),
        // RFC 7622 §3.1: the resourcepart starts at the first slash and may contain more.
        session(`${bare}/c/d`, unique('s')),
      ];
      const strangers = [
        session(`${bare}.evil/a`, unique('s')),
        session(`${bare}x/a`, unique('s')),
        session(`${local}x@example.com/a`, unique('s')),
        session(`x${bare}/a`, unique('s')),
      ];
      for (const record of [...mine, ...strangers]) await registry.bind(record);
      expect(byJid(await registry.resources(bare))).toEqual(byJid(mine));
      expect(await registry.resources(`${bare}.evil`)).toEqual([strangers[0]]);
      expect(await registry.resources(`${unique('nobody')}@example.com`)).toEqual([]);
    });

    it('update patches each field independently and returns the updated record', async () => {
      const registry = await newRegistry();
      const jid = `${unique('benvolio')}@example.com/square`;
      const record = session(jid, unique('s'));
      await registry.bind(record);
      const presence = '<presence><show>chat</show></presence>';
      const directed = ['capulet@example.com/hall'];
      // Concurrent writers of different fields must not undo each other.
      const results = await Promise.all([
        registry.update(jid, record.sessionId, { priority: 5 }),
        registry.update(jid, record.sessionId, { available: true }),
        registry.update(jid, record.sessionId, { interested: true }),
        registry.update(jid, record.sessionId, { presence }),
        registry.update(jid, record.sessionId, { directed }),
      ]);
      expect(results.every((r) => r !== undefined)).toBe(true);
      const expected: SessionRecord = {
        ...record,
        priority: 5,
        available: true,
        interested: true,
        presence,
        directed,
      };
      expect(await registry.get(jid)).toEqual(expected);
      const lowered = await registry.update(jid, record.sessionId, { priority: -1, available: false });
      expect(lowered).toEqual({ ...expected, priority: -1, available: false });
      expect(await registry.get(jid)).toEqual(lowered);
      expect(await registry.update(jid, record.sessionId, { directed: [] })).toEqual({
        ...expected,
        priority: -1,
        available: false,
        directed: [],
      });
    });

    it('update with presence null removes the stored presence and keeps the other fields', async () => {
      const registry = await newRegistry();
      const jid = `${unique('mercutio')}@example.com/square`;
      const record = session(jid, unique('s'));
      await registry.bind(record);
      await registry.update(jid, record.sessionId, { available: true, presence: '<presence/>', priority: 3 });
      const cleared = await registry.update(jid, record.sessionId, { available: false, presence: null });
      expect(cleared).toEqual({ ...record, priority: 3, available: false });
      expect(await registry.get(jid)).toEqual(cleared);
      expect((await registry.get(jid))?.presence).toBeUndefined();
    });

    it('update refuses a stale session id and an unbound JID', async () => {
      const registry = await newRegistry();
      const jid = `${unique('paris')}@example.com/church`;
      const old = session(jid, unique('old'));
      const current = session(jid, unique('new'));
      await registry.bind(old);
      await registry.bind(current);
      expect(await registry.update(jid, old.sessionId, { priority: 9, available: true })).toBeUndefined();
      expect(await registry.get(jid)).toEqual(current);
      expect(await registry.update(`${unique('ghost')}@example.com/r`, 'x', { priority: 1 })).toBeUndefined();
      await registry.unbind(jid, current.sessionId);
      expect(await registry.update(jid, current.sessionId, { priority: 1 })).toBeUndefined();
      expect(await registry.get(jid)).toBeUndefined();
    });

    it('renews an edge lease and reports it expired only after its time ran out', async () => {
      const registry = await newRegistry();
      const edge = unique('edge');
      expect(await registry.renewLease(edge, '127.0.0.1:7001', 60_000)).toBe(false);
      const lease = await registry.lease(edge);
      expect(lease?.address).toBe('127.0.0.1:7001');
      expect(lease?.expiresAt).toBeGreaterThan(Date.now() + 30_000);
      expect(await registry.expiredEdges()).not.toContain(edge);

      await registry.renewLease(edge, '127.0.0.1:7001', 50);
      await waitFor(async () => (await registry.expiredEdges()).includes(edge), 5000, 'the lease to expire');
      // A heartbeat that comes late still revives the edge.
      expect(await registry.renewLease(edge, '127.0.0.1:7002', 60_000)).toBe(true);
      expect(await registry.expiredEdges()).not.toContain(edge);
      expect((await registry.lease(edge))?.address).toBe('127.0.0.1:7002');

      await registry.dropEdge(edge);
      expect(await registry.lease(edge)).toBeUndefined();
      // A lease that is gone (dropped, or lost with the registry) is created again, and says so.
      expect(await registry.renewLease(edge, '127.0.0.1:7002', 60_000)).toBe(false);
      await registry.dropEdge(edge);
      expect(await registry.expiredEdges()).not.toContain(edge);
    });

    it('lists the sessions of an edge, following binds, replacements and unbinds', async () => {
      const registry = await newRegistry();
      const [edgeA, edgeB] = [unique('edge-a'), unique('edge-b')];
      const bare = `${unique('tybalt')}@example.com`;
      const one = session(`${bare}/one`, unique('s'), edgeA);
      const two = session(`${bare}/two`, unique('s'), edgeA);
      await registry.bind(one);
      await registry.bind(two);
      await registry.bind(session(`${unique('other')}@example.com/x`, unique('s'), edgeB));
      const ids = async (edge: string): Promise<string[]> =>
        (await registry.sessionsOfEdge(edge)).map((r) => r.sessionId).sort();
      expect(await ids(edgeA)).toEqual([one.sessionId, two.sessionId].sort());

      // The same full JID bound again on another edge moves there.
      const moved = session(two.jid, unique('s'), edgeB);
      await registry.bind(moved);
      expect(await ids(edgeA)).toEqual([one.sessionId]);
      expect(await ids(edgeB)).toContain(moved.sessionId);

      await registry.unbind(one.jid, one.sessionId);
      expect(await ids(edgeA)).toEqual([]);
      expect(await registry.sessionsOfEdge(unique('edge-none'))).toEqual([]);
    });

    it('restores a record only while its full JID is free', async () => {
      const registry = await newRegistry();
      const bare = `${unique('portia')}@example.com`;
      const edge = unique('edge');
      const record: SessionRecord = {
        ...session(`${bare}/a`, unique('s'), edge),
        available: true,
        priority: 2,
      };
      expect(await registry.restore(record)).toBe(true);
      expect(await registry.get(record.jid)).toEqual(record);
      expect((await registry.sessionsOfEdge(edge)).map((r) => r.sessionId)).toEqual([record.sessionId]);
      const other = session(record.jid, unique('s'), unique('edge'));
      expect(await registry.restore(other)).toBe(false);
      expect((await registry.get(record.jid))?.sessionId).toBe(record.sessionId);
      expect(await registry.sessionsOfEdge(other.edgeId)).toEqual([]);
    });

    describe('XEP-0198 stream state', () => {
      async function managed(
        registry: SessionRegistry,
        timeoutMs = 60_000,
      ): Promise<{ record: SessionRecord; id: string; bare: string }> {
        const bare = `${unique('mercutio')}@example.com`;
        const record = session(`${bare}/phone`, unique('s'), unique('edge'));
        await registry.bind(record);
        const id = unique('sm');
        expect(await registry.openStream(record.jid, record.sessionId, id, timeoutMs)).toBe(true);
        return { record, id, bare };
      }

      it('opens counting from given counts, for a stream an edge restores', async () => {
        const registry = await newRegistry();
        const bare = `${unique('nerissa')}@example.com`;
        const record = session(`${bare}/x`, unique('s'), unique('edge'));
        await registry.bind(record);
        const id = unique('sm');
        expect(
          await registry.openStream(record.jid, record.sessionId, id, 60_000, { handled: 7, acked: 4 }),
        ).toBe(true);
        expect(await registry.streamPush(record.jid, id, record.sessionId, '<message/>')).toBe(5);
        const resumed = await registry.resumeStream(bare, id, unique('s'), unique('edge'));
        expect(resumed?.state).toMatchObject({ handled: 7, acked: 4 });
      });

      it('opens only for the session bound to the JID, and marks its record', async () => {
        const registry = await newRegistry();
        const { record, id } = await managed(registry);
        expect((await registry.get(record.jid))?.stream).toBe(id);
        expect(await registry.openStream(record.jid, unique('stale'), unique('sm'), 1000)).toBe(false);
        expect(await registry.openStream(`${unique('nobody')}@example.com/x`, 's', unique('sm'), 1000)).toBe(
          false,
        );
      });

      it('numbers queued stanzas, drops acknowledged ones, and refuses an h beyond what was sent', async () => {
        const registry = await newRegistry();
        const { record, id } = await managed(registry);
        const { jid, sessionId } = record;
        expect(await registry.streamPush(jid, id, sessionId, '<message id="1"/>')).toBe(1);
        expect(await registry.streamPush(jid, id, sessionId, '<message id="2"/>')).toBe(2);
        expect(await registry.streamPush(jid, id, sessionId, '<message id="3"/>')).toBe(3);
        expect(await registry.streamAck(jid, id, sessionId, 1)).toEqual({ ok: true, sent: 3 });
        expect(await registry.streamAck(jid, id, sessionId, 4)).toEqual({ ok: false, sent: 3 });
        // An older h than the last one changes nothing.
        expect(await registry.streamAck(jid, id, sessionId, 0)).toEqual({ ok: true, sent: 3 });
        expect(await registry.streamPush(jid, id, sessionId, '<message id="4"/>')).toBe(4);
        // The same stanza again (a retried delivery), even after it was acknowledged: taken once.
        expect(await registry.streamPush(jid, id, sessionId, '<message id="4"/>')).toBe(0);
        expect(await registry.streamPush(jid, id, sessionId, '<message id="1"/>')).toBe(0);
        expect(await registry.streamHandled(jid, id, sessionId, 5)).toBe(true);
        expect(await registry.streamHandled(jid, id, sessionId, 2)).toBe(true);

        const resumed = await registry.resumeStream(bareOf(jid), id, unique('s2'), unique('edge'));
        expect(resumed?.state).toMatchObject({ id, jid, handled: 5, acked: 1 });
        expect(resumed?.state.unacked).toEqual([
          '<message id="2"/>',
          '<message id="3"/>',
          '<message id="4"/>',
        ]);
      });

      it('tells what was queued after a number: the unacknowledged stanzas past it', async () => {
        const registry = await newRegistry();
        const { record, id } = await managed(registry);
        const { jid, sessionId } = record;
        expect(await registry.streamQueued(jid, id, sessionId, 0)).toEqual({ sent: 0, stanzas: [] });
        for (const n of [1, 2, 3, 4]) await registry.streamPush(jid, id, sessionId, `<message id="${n}"/>`);
        expect(await registry.streamQueued(jid, id, sessionId, 2)).toEqual({
          sent: 4,
          stanzas: ['<message id="3"/>', '<message id="4"/>'],
        });
        expect(await registry.streamQueued(jid, id, sessionId, 4)).toEqual({ sent: 4, stanzas: [] });
        // Acknowledged stanzas are gone: past an older number, only those still queued.
        await registry.streamAck(jid, id, sessionId, 3);
        expect(await registry.streamQueued(jid, id, sessionId, 1)).toEqual({
          sent: 4,
          stanzas: ['<message id="4"/>'],
        });
        expect(await registry.streamQueued(jid, id, unique('other'), 0)).toBeUndefined();
      });

      it('refuses every call from a session that does not hold the state', async () => {
        const registry = await newRegistry();
        const { record, id } = await managed(registry);
        const other = unique('other');
        expect(await registry.streamPush(record.jid, id, other, '<message/>')).toBeUndefined();
        expect(await registry.streamAck(record.jid, id, other, 0)).toBeUndefined();
        expect(await registry.streamHandled(record.jid, id, other, 1)).toBe(false);
        expect(await registry.detachStream(record.jid, id, other)).toBe(false);
        expect(await registry.closeStream(record.jid, id, other)).toBeUndefined();
        expect(await registry.streamPush(record.jid, unique('sm'), record.sessionId, '<m/>')).toBeUndefined();
      });

      it('resumes on another edge: the binding moves in the same step and the old session loses it', async () => {
        const registry = await newRegistry();
        const { record, id, bare } = await managed(registry);
        await registry.update(record.jid, record.sessionId, { available: true, priority: 5 });
        await registry.streamPush(record.jid, id, record.sessionId, '<message id="a"/>');
        const edge = unique('edge-new');
        const sessionId = unique('s-new');
        expect(
          await registry.resumeStream(`${unique('iago')}@example.com`, id, sessionId, edge),
        ).toBeUndefined();
        expect(await registry.resumeStream(bare, unique('sm'), sessionId, edge)).toBeUndefined();

        const resumed = await registry.resumeStream(bare, id, sessionId, edge);
        expect(resumed?.previous).toEqual({ sessionId: record.sessionId, edgeId: record.edgeId });
        expect(resumed?.state).toMatchObject({ sessionId, edgeId: edge, handled: 0, acked: 0 });
        expect(resumed?.state.unacked).toEqual(['<message id="a"/>']);
        const now = await registry.get(record.jid);
        expect(now).toMatchObject({ sessionId, edgeId: edge, available: true, priority: 5, stream: id });
        expect((await registry.sessionsOfEdge(edge)).map((r) => r.sessionId)).toEqual([sessionId]);
        expect(await registry.sessionsOfEdge(record.edgeId)).toEqual([]);

        expect(await registry.streamPush(record.jid, id, record.sessionId, '<m/>')).toBeUndefined();
        expect(await registry.closeStream(record.jid, id, record.sessionId)).toBeUndefined();
        expect(await registry.unbind(record.jid, record.sessionId)).toBeUndefined();
        expect(await registry.streamPush(record.jid, id, sessionId, '<message id="b"/>')).toBe(2);
      });

      it('cannot resume a stream whose session was replaced by a new bind', async () => {
        const registry = await newRegistry();
        const { record, id, bare } = await managed(registry);
        await registry.bind(session(record.jid, unique('s'), record.edgeId));
        expect(await registry.resumeStream(bare, id, unique('s'), unique('edge'))).toBeUndefined();
      });

      it('closes for its holder: the state is gone, the session unbound, the queue handed back', async () => {
        const registry = await newRegistry();
        const { record, id, bare } = await managed(registry);
        await registry.streamPush(record.jid, id, record.sessionId, '<message id="x"/>');
        const closed = await registry.closeStream(record.jid, id, record.sessionId);
        expect(closed?.unacked).toEqual(['<message id="x"/>']);
        expect(closed?.record).toMatchObject({ jid: record.jid, sessionId: record.sessionId, stream: id });
        expect(await registry.get(record.jid)).toBeUndefined();
        expect(await registry.resumeStream(bare, id, unique('s'), unique('edge'))).toBeUndefined();
        expect(await registry.closeStream(record.jid, id, record.sessionId)).toBeUndefined();
      });

      it('expires a detached state after its timeout, unless it was resumed', async () => {
        const registry = await newRegistry();
        const kept = await managed(registry, 60_000);
        const short = await managed(registry, 100);
        const resumed = await managed(registry, 100);
        for (const m of [kept, short, resumed]) {
          await registry.streamPush(m.record.jid, m.id, m.record.sessionId, `<message id="${m.id}"/>`);
          expect(await registry.detachStream(m.record.jid, m.id, m.record.sessionId)).toBe(true);
        }
        // Not yet expired: the sweeper's close does nothing.
        expect(await registry.closeStream(kept.record.jid, kept.id)).toBeUndefined();
        const newSession = unique('s');
        expect(
          await registry.resumeStream(resumed.bare, resumed.id, newSession, unique('edge')),
        ).toBeDefined();
        await waitFor(
          async () => (await registry.expiredStreams()).some((s) => s.id === short.id),
          5000,
          'the short state to expire',
        );
        const expired = await registry.expiredStreams();
        expect(expired).toContainEqual({ jid: short.record.jid, id: short.id });
        expect(expired.map((s) => s.id)).not.toContain(kept.id);
        expect(expired.map((s) => s.id)).not.toContain(resumed.id);
        await new Promise((resolve) => setTimeout(resolve, 150));
        // Resumed, so attached again: never closed as expired.
        expect(await registry.closeStream(resumed.record.jid, resumed.id)).toBeUndefined();
        expect((await registry.get(resumed.record.jid))?.sessionId).toBe(newSession);

        const closed = await registry.closeStream(short.record.jid, short.id);
        expect(closed?.unacked).toEqual([`<message id="${short.id}"/>`]);
        expect(closed?.record?.sessionId).toBe(short.record.sessionId);
        expect(await registry.get(short.record.jid)).toBeUndefined();
        expect((await registry.expiredStreams()).map((s) => s.id)).not.toContain(short.id);
      });
    });
  });
}
