// RFC 6121 §2 and XEP-0237: roster get, set, remove, pushes and every error case of §2.3.3.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { decodeEnvelope, TOPIC_PRESENCE, type ConfigInput } from '@starling/core';
import type { RosterItem } from '@starling/ports';
import { openSqliteStore } from '@starling/store';
import { errorOf, FeatureKit, withoutId } from '../test-kit.ts';
import roster from './index.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const CHAMBER = `${JULIET}/chamber`;
const ROMEO = 'romeo@example.com';
const ORCHARD = `${ROMEO}/orchard`;

let kit: FeatureKit;

async function open(config: ConfigInput = {}): Promise<void> {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [roster],
    { config },
  );
  await kit.addUser('juliet');
  await kit.addUser('romeo');
}

function item(jid: string, extra: Partial<RosterItem> = {}): RosterItem {
  return { jid, subscription: 'none', askOut: false, approved: false, groups: [], ...extra };
}

function set(itemXml: string, id = 's1'): string {
  return `<iq type="set" id="${id}"><query xmlns="jabber:iq:roster">${itemXml}</query></iq>`;
}

/** Presence the roster routed through the presence role, as "key type". */
function presenceRouted(): string[] {
  return kit.published
    .filter((record) => record.topic === TOPIC_PRESENCE)
    .map((record) => {
      const envelope = decodeEnvelope(record.value);
      return envelope.t === 'stanza' ? `${record.key} ${envelope.xml}` : '';
    });
}

afterEach(async () => {
  await kit.close();
});

describe('roster get', () => {
  beforeEach(async () => {
    await open();
    await kit.store.rosters.setItem(
      'juliet',
      item(ROMEO, { name: 'Romeo', subscription: 'both', groups: ['Friends'] }),
    );
    await kit.store.rosters.setItem('juliet', item('nurse@example.com', { askOut: true }));
    await kit.bind(BALCONY);
  });

  it('returns every item without a version when the client does not use versioning', async () => {
    expect(await kit.iq(BALCONY, '<iq type="get" id="g1"><query xmlns="jabber:iq:roster"/></iq>')).toBe(
      `<iq type="result" id="g1" to="${BALCONY}"><query xmlns="jabber:iq:roster">` +
        '<item jid="nurse@example.com" subscription="none" ask="subscribe"/>' +
        `<item jid="${ROMEO}" name="Romeo" subscription="both"><group>Friends</group></item></query></iq>`,
    );
  });

  it('marks the requesting resource interested', async () => {
    expect((await kit.backends.registry.get(BALCONY))?.interested).toBe(false);
    await kit.iq(BALCONY, '<iq type="get" id="g1"><query xmlns="jabber:iq:roster"/></iq>');
    expect((await kit.backends.registry.get(BALCONY))?.interested).toBe(true);
  });

  it('returns the roster with its version to a versioning client, and nothing when it is current', async () => {
    const full = await kit.iq(
      BALCONY,
      '<iq type="get" id="g2"><query xmlns="jabber:iq:roster" ver=""/></iq>',
    );
    expect(full).toMatch(
      new RegExp(`^<iq type="result" id="g2" to="${BALCONY}"><query xmlns="jabber:iq:roster" ver="2"><item`),
    );
    expect(
      await kit.iq(BALCONY, '<iq type="get" id="g3"><query xmlns="jabber:iq:roster" ver="1"/></iq>'),
    ).toBe(full.replace('g2', 'g3'));
    expect(
      await kit.iq(BALCONY, '<iq type="get" id="g4"><query xmlns="jabber:iq:roster" ver="2"/></iq>'),
    ).toBe(`<iq type="result" id="g4" to="${BALCONY}"/>`);
  });

  it("refuses another account's roster", async () => {
    await kit.bind(ORCHARD);
    const reply = await kit.iq(
      ORCHARD,
      `<iq type="get" id="g5" to="${JULIET}"><query xmlns="jabber:iq:roster"/></iq>`,
    );
    expect(errorOf(reply)).toBe('auth forbidden');
    const setReply = await kit.iq(
      ORCHARD,
      `<iq type="set" id="g6" to="${JULIET}"><query xmlns="jabber:iq:roster"><item jid="x@example.com"/></query></iq>`,
    );
    expect(errorOf(setReply)).toBe('auth forbidden');
  });
});

describe('roster set', () => {
  beforeEach(async () => {
    await open({ limits: { rosterItems: 2 } });
    await kit.bind(BALCONY, { interested: true });
    await kit.bind(CHAMBER, { interested: true });
    await kit.bind(`${JULIET}/uninterested`);
  });

  it('adds an item, answers with an empty result and pushes it to every interested resource', async () => {
    const reply = await kit.iq(
      BALCONY,
      set(
        `<item jid="${ROMEO}" name="Romeo" subscription="both" ask="subscribe"><group>Friends</group><group>Lovers</group></item>`,
      ),
    );
    expect(reply).toBe(`<iq type="result" id="s1" to="${BALCONY}"/>`);
    const pushed =
      '<query xmlns="jabber:iq:roster" ver="1"><item jid="romeo@example.com" name="Romeo" subscription="none">' +
      '<group>Friends</group><group>Lovers</group></item></query>';
    expect(kit.take(BALCONY).map(withoutId)).toEqual([`<iq type="set" to="${BALCONY}">${pushed}</iq>`]);
    expect(kit.take(CHAMBER).map(withoutId)).toEqual([`<iq type="set" to="${CHAMBER}">${pushed}</iq>`]);
    expect(kit.take(`${JULIET}/uninterested`)).toEqual([]);
    expect(await kit.store.rosters.getItem('juliet', ROMEO)).toEqual(
      item(ROMEO, { name: 'Romeo', groups: ['Friends', 'Lovers'] }),
    );
  });

  it('updates the handle and groups of an item but keeps its subscription state', async () => {
    await kit.store.rosters.setItem(
      'juliet',
      item(ROMEO, { name: 'R', subscription: 'from', askOut: true, groups: ['A'] }),
    );
    expect(await kit.iq(BALCONY, set(`<item jid="${ROMEO}"/>`))).toBe(
      `<iq type="result" id="s1" to="${BALCONY}"/>`,
    );
    expect(await kit.store.rosters.getItem('juliet', ROMEO)).toEqual(
      item(ROMEO, { subscription: 'from', askOut: true }),
    );
  });

  it.each([
    ['no item', '', 'modify bad-request'],
    ['two items', '<item jid="a@example.com"/><item jid="b@example.com"/>', 'modify bad-request'],
    ['another element', '<group>x</group>', 'modify bad-request'],
    ['no jid', '<item name="x"/>', 'modify jid-malformed'],
    ['an invalid jid', '<item jid="a@b@c"/>', 'modify jid-malformed'],
    ['a full jid', '<item jid="romeo@example.com/orchard"/>', 'modify jid-malformed'],
    ['the own jid', `<item jid="${JULIET}"/>`, 'cancel not-allowed'],
    ['a name that is too long', `<item jid="${ROMEO}" name="${'n'.repeat(1025)}"/>`, 'modify not-acceptable'],
    ['an empty group', `<item jid="${ROMEO}"><group></group></item>`, 'modify not-acceptable'],
    [
      'a group name that is too long',
      `<item jid="${ROMEO}"><group>${'g'.repeat(1025)}</group></item>`,
      'modify not-acceptable',
    ],
    [
      'duplicate groups',
      `<item jid="${ROMEO}"><group>A</group><group>A</group></item>`,
      'modify bad-request',
    ],
  ])('refuses a set with %s', async (_case, items, error) => {
    expect(errorOf(await kit.iq(BALCONY, set(items)))).toBe(error);
    expect((await kit.store.rosters.get('juliet')).items).toEqual([]);
    expect(kit.take(BALCONY)).toEqual([]);
  });

  it('refuses a new item beyond the roster size limit, but still updates existing ones', async () => {
    await kit.iq(BALCONY, set('<item jid="a@example.com"/>'));
    await kit.iq(BALCONY, set('<item jid="b@example.com"/>'));
    expect(errorOf(await kit.iq(BALCONY, set('<item jid="c@example.com"/>')))).toBe('cancel not-allowed');
    expect(await kit.iq(BALCONY, set('<item jid="b@example.com" name="B"/>', 's9'))).toBe(
      `<iq type="result" id="s9" to="${BALCONY}"/>`,
    );
  });
});

describe('roster remove', () => {
  beforeEach(async () => {
    await open();
    await kit.bind(BALCONY, { interested: true });
    await kit.bind(CHAMBER, { available: false });
    await kit.bind(ORCHARD);
  });

  const remove = set(`<item jid="${ROMEO}" subscription="remove"/>`, 'r1');

  it('answers item-not-found for an item that is not there', async () => {
    expect(errorOf(await kit.iq(BALCONY, remove))).toBe('cancel item-not-found');
  });

  it('cancels both subscriptions, tells the contact the user is gone, and pushes the removal', async () => {
    await kit.store.rosters.setItem('juliet', item(ROMEO, { subscription: 'both' }));
    expect(await kit.iq(BALCONY, remove)).toBe(`<iq type="result" id="r1" to="${BALCONY}"/>`);
    expect(presenceRouted()).toEqual([
      `${ROMEO} <presence type="unsubscribe" from="${JULIET}" to="${ROMEO}"/>`,
      `${ROMEO} <presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>`,
    ]);
    expect(kit.take(ORCHARD)).toEqual([`<presence type="unavailable" from="${BALCONY}" to="${ROMEO}"/>`]);
    expect(kit.take(BALCONY).map(withoutId)).toEqual([
      `<iq type="set" to="${BALCONY}"><query xmlns="jabber:iq:roster" ver="2"><item jid="${ROMEO}" subscription="remove"/></query></iq>`,
    ]);
    expect(await kit.store.rosters.getItem('juliet', ROMEO)).toBeUndefined();
  });

  it('cancels a pending outbound request with unsubscribe only', async () => {
    await kit.store.rosters.setItem('juliet', item(ROMEO, { askOut: true }));
    await kit.iq(BALCONY, remove);
    expect(presenceRouted()).toEqual([
      `${ROMEO} <presence type="unsubscribe" from="${JULIET}" to="${ROMEO}"/>`,
    ]);
    expect(kit.take(ORCHARD)).toEqual([]);
  });

  it('declines a pending inbound request with unsubscribed and forgets it', async () => {
    await kit.store.rosters.setItem('juliet', item(ROMEO));
    await kit.store.subscriptionRequests.add(
      'juliet',
      ROMEO,
      `<presence type="subscribe" from="${ROMEO}" to="${JULIET}"/>`,
    );
    await kit.iq(BALCONY, remove);
    expect(presenceRouted()).toEqual([
      `${ROMEO} <presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>`,
    ]);
    expect(await kit.store.subscriptionRequests.has('juliet', ROMEO)).toBe(false);
  });

  it('removes an item without subscriptions silently', async () => {
    await kit.store.rosters.setItem('juliet', item(ROMEO, { subscription: 'none' }));
    await kit.iq(BALCONY, remove);
    expect(presenceRouted()).toEqual([]);
    expect(kit.take(ORCHARD)).toEqual([]);
    expect(kit.take(BALCONY)).toHaveLength(1);
  });
});
