// RFC 6121 §2: roster get, set, push and remove, their error cases, and roster versioning (§2.6, XEP-0237).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'ltx';
import { RawClient, rawLogin, startTestServer, type TestServer } from '../harness/index.ts';
import {
  anyRosterPush,
  attr,
  groupsOf,
  NS_ROSTER,
  outcome,
  rosterItem,
  rosterItems,
  rosterPush,
} from './matchers.ts';
import { Cast, fetchRoster, PASSWORD } from './steps.ts';

let server: TestServer;
let cast: Cast;

beforeAll(async () => {
  server = await startTestServer();
  cast = new Cast(server);
});

afterAll(async () => {
  await cast.leave();
  await server.stop();
});

const rosterSet = (item: string): string =>
  `<iq type='set'><query xmlns='jabber:iq:roster'>${item}</query></iq>`;

describe('roster get (RFC 6121 §2.2)', () => {
  it('returns an empty roster to a new account', async () => {
    const romeo = await cast.user('romeo');

    const roster = await romeo.iq(`<iq type='get'><query xmlns='jabber:iq:roster'/></iq>`);

    expect(outcome(roster)).toBe('result');
    expect(roster.getChild('query', NS_ROSTER)).toBeDefined();
    expect(rosterItems(roster)).toHaveLength(0);
  });

  it('lists the items the user added, with their names and groups', async () => {
    const romeo = await cast.user('romeo');
    const nurse = cast.jid('nurse-of-romeo');
    const tybalt = cast.jid('tybalt-of-romeo');

    const addNurse = await romeo.iq(
      rosterSet(`<item jid='${nurse}' name='Nurse'><group>Servants</group><group>Capulets</group></item>`),
    );
    expect(outcome(addNurse)).toBe('result');
    expect(outcome(await romeo.iq(rosterSet(`<item jid='${tybalt}'/>`)))).toBe('result');

    const roster = await fetchRoster(romeo);

    expect(rosterItems(roster)).toHaveLength(2);
    const nurseItem = rosterItem(roster, nurse);
    expect(nurseItem).toBeDefined();
    expect(attr(nurseItem!, 'name')).toBe('Nurse');
    expect(attr(nurseItem!, 'subscription') ?? 'none').toBe('none');
    expect(groupsOf(nurseItem!)).toEqual(['Capulets', 'Servants']);
    const tybaltItem = rosterItem(roster, tybalt);
    expect(tybaltItem).toBeDefined();
    expect(attr(tybaltItem!, 'name')).toBeUndefined();
    expect(groupsOf(tybaltItem!)).toEqual([]);
  });
});

describe('roster set and push (RFC 6121 §2.3, §2.4, §2.5)', () => {
  it('pushes an added item to every interested resource, and not to a resource that never asked for the roster', async () => {
    const username = await cast.account('romeo');
    const balcony = await cast.login(username, { resource: 'balcony' });
    const garden = await cast.login(username, { resource: 'garden' });
    const orchard = await cast.login(username, { resource: 'orchard' });
    await fetchRoster(balcony);
    await fetchRoster(garden);
    const nurse = cast.jid('nurse-of-balcony');

    // romeo/balcony adds the nurse; both interested resources are told, the one that generated the set too.
    const reply = await balcony.iq(
      rosterSet(`<item jid='${nurse}' name='Nurse'><group>Servants</group></item>`),
    );
    expect(outcome(reply)).toBe('result');
    for (const session of [balcony, garden]) {
      const push = await session.expect(
        rosterPush(balcony.bare, nurse, { subscription: 'none', name: 'Nurse' }),
      );
      expect(groupsOf(rosterItem(push, nurse)!)).toEqual(['Servants']);
    }
    await orchard.expectNothing(anyRosterPush);
  });

  it('updates an item in place: new name and groups replace the old, and the change is pushed', async () => {
    const username = await cast.account('romeo');
    const balcony = await cast.login(username, { resource: 'balcony' });
    const garden = await cast.login(username, { resource: 'garden' });
    await fetchRoster(balcony);
    await fetchRoster(garden);
    const nurse = cast.jid('nurse-of-update');
    await balcony.iq(rosterSet(`<item jid='${nurse}' name='Nurse'><group>Servants</group></item>`));
    await balcony.expect(rosterPush(balcony.bare, nurse, { name: 'Nurse' }));
    await garden.expect(rosterPush(garden.bare, nurse, { name: 'Nurse' }));

    // romeo/garden renames her and moves her to another group.
    const reply = await garden.iq(
      rosterSet(`<item jid='${nurse}' name='Angelica'><group>Capulets</group></item>`),
    );

    expect(outcome(reply)).toBe('result');
    for (const session of [balcony, garden]) {
      const push = await session.expect(rosterPush(balcony.bare, nurse, { name: 'Angelica' }));
      expect(groupsOf(rosterItem(push, nurse)!)).toEqual(['Capulets']);
    }
    const roster = await fetchRoster(balcony);
    expect(rosterItems(roster)).toHaveLength(1);
    expect(attr(rosterItem(roster, nurse)!, 'name')).toBe('Angelica');
    expect(groupsOf(rosterItem(roster, nurse)!)).toEqual(['Capulets']);
  });

  it('removes an item and pushes subscription="remove" to every interested resource', async () => {
    const username = await cast.account('romeo');
    const balcony = await cast.login(username, { resource: 'balcony' });
    const garden = await cast.login(username, { resource: 'garden' });
    await fetchRoster(balcony);
    await fetchRoster(garden);
    const nurse = cast.jid('nurse-of-remove');
    await balcony.iq(rosterSet(`<item jid='${nurse}' name='Nurse'/>`));
    await balcony.expect(rosterPush(balcony.bare, nurse, { subscription: 'none' }));
    await garden.expect(rosterPush(garden.bare, nurse, { subscription: 'none' }));

    const reply = await balcony.iq(rosterSet(`<item jid='${nurse}' subscription='remove'/>`));

    expect(outcome(reply)).toBe('result');
    await balcony.expect(rosterPush(balcony.bare, nurse, { subscription: 'remove' }));
    await garden.expect(rosterPush(garden.bare, nurse, { subscription: 'remove' }));
    expect(rosterItems(await fetchRoster(garden))).toHaveLength(0);
  });

  it('answers the removal of an item that is not in the roster with item-not-found', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(
      rosterSet(`<item jid='${cast.jid('nobody-in-roster')}' subscription='remove'/>`),
    );

    expect(outcome(reply)).toBe('error: item-not-found');
  });
});

describe('roster set errors (RFC 6121 §2.1.5, §2.3.3)', () => {
  it('refuses a set with two items (bad-request) and adds neither', async () => {
    const romeo = await cast.user('romeo');
    const a = cast.jid('first-of-two');
    const b = cast.jid('second-of-two');

    const reply = await romeo.iq(rosterSet(`<item jid='${a}'/><item jid='${b}'/>`));

    expect(outcome(reply)).toBe('error: bad-request');
    expect(rosterItems(await fetchRoster(romeo))).toHaveLength(0);
  });

  it("refuses an item for the user's own JID", async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(rosterSet(`<item jid='${romeo.bare}' name='Myself'/>`));

    expect(attr(reply, 'type')).toBe('error');
    expect(rosterItem(await fetchRoster(romeo), romeo.bare)).toBeUndefined();
  });

  it('refuses a group with an empty name (not-acceptable)', async () => {
    const romeo = await cast.user('romeo');
    const nurse = cast.jid('nurse-of-empty-group');

    const reply = await romeo.iq(rosterSet(`<item jid='${nurse}'><group></group></item>`));

    // RFC 6121 §2.3.3: zero-length <group/> character data is not-acceptable (not bad-request).
    expect(outcome(reply)).toBe('error: not-acceptable');
    expect(rosterItem(await fetchRoster(romeo), nurse)).toBeUndefined();
  });

  it('refuses duplicate groups in one item (bad-request)', async () => {
    const romeo = await cast.user('romeo');
    const nurse = cast.jid('nurse-of-duplicates');

    const reply = await romeo.iq(
      rosterSet(`<item jid='${nurse}'><group>Servants</group><group>Servants</group></item>`),
    );

    expect(outcome(reply)).toBe('error: bad-request');
  });

  it("forbids a roster set addressed to another user's account, and leaves that roster alone", async () => {
    const romeo = await cast.user('romeo');
    const julietName = await cast.account('juliet');
    const juliet = cast.jid(julietName);

    const reply = await romeo.iq(
      `<iq type='set' to='${juliet}'><query xmlns='jabber:iq:roster'><item jid='${cast.jid('paris')}'/></query></iq>`,
    );

    expect(outcome(reply)).toBe('error: forbidden');
    const julietSession = await cast.login(julietName);
    expect(rosterItems(await fetchRoster(julietSession))).toHaveLength(0);
  });
});

describe('roster versioning (RFC 6121 §2.6, XEP-0237)', () => {
  it('advertises roster versioning in the stream features after authentication', async () => {
    const username = await cast.account('romeo');
    const raw = await RawClient.connect(server);
    try {
      await rawLogin(raw, server, username, PASSWORD);
      const features = raw.transcript.slice(raw.transcript.lastIndexOf('<stream:features'));
      const parsed = parse(
        features.slice(0, features.indexOf('</stream:features>') + '</stream:features>'.length),
      );
      expect(parsed.getChild('ver', 'urn:xmpp:features:rosterver')).toBeDefined();
    } finally {
      raw.destroy();
    }
  });

  it('returns an empty result for the current version and the full roster for an older one', async () => {
    const romeo = await cast.user('romeo');
    const nurse = cast.jid('nurse-of-ver');
    const tybalt = cast.jid('tybalt-of-ver');

    // An empty ver asks for the whole roster, stamped with its version.
    const first = await fetchRoster(romeo, '');
    const v1 = attr(first.getChild('query', NS_ROSTER)!, 'ver');
    expect(v1).toBeDefined();

    await romeo.iq(rosterSet(`<item jid='${nurse}' name='Nurse'/>`));
    const push1 = await romeo.expect(rosterPush(romeo.bare, nurse));
    await romeo.iq(rosterSet(`<item jid='${tybalt}'/>`));
    const push2 = await romeo.expect(rosterPush(romeo.bare, tybalt));
    const v2 = attr(push1.getChild('query', NS_ROSTER)!, 'ver');
    const v3 = attr(push2.getChild('query', NS_ROSTER)!, 'ver');
    expect(v2).toBeDefined();
    expect(v3).toBeDefined();
    expect(new Set([v1, v2, v3]).size).toBe(3);

    // Up to date: an IQ result with no payload.
    const current = await romeo.iq(`<iq type='get'><query xmlns='jabber:iq:roster' ver='${v3!}'/></iq>`);
    expect(outcome(current)).toBe('result');
    expect(current.getChildElements()).toHaveLength(0);

    // Out of date: the whole roster, at the current version.
    const stale = await romeo.iq(`<iq type='get'><query xmlns='jabber:iq:roster' ver='${v1!}'/></iq>`);
    expect(outcome(stale)).toBe('result');
    expect(attr(stale.getChild('query', NS_ROSTER)!, 'ver')).toBe(v3);
    expect(
      rosterItems(stale)
        .map((item) => attr(item, 'jid'))
        .sort(),
    ).toEqual([nurse, tybalt].sort());
  });
});
