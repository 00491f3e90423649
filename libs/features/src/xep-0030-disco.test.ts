// XEP-0030: disco#info and disco#items of the server and of accounts, with who may ask and unknown nodes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { defineFeature, type Feature } from '@starling/core';
import { openSqliteStore } from '@starling/store';
import { errorOf, FeatureKit } from './test-kit.ts';
import disco from './xep-0030-disco.ts';
import { CAPS_NODE, serverCaps } from './xep-0115-caps.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ORCHARD = 'romeo@example.com/orchard';
const NURSE = 'nurse@example.com/kitchen';

const extra = defineFeature({
  id: 'extra',
  spec: { title: 'Extra' },
  roles: ['router'],
  disco: {
    features: ['urn:extra'],
    identities: [{ category: 'pubsub', type: 'pep' }],
    accountFeatures: ['urn:pep'],
  },
});
const closed = defineFeature({
  id: 'closed',
  spec: { title: 'Closed' },
  roles: ['router'],
  enabled: () => false,
  disco: { features: ['urn:closed'], accountFeatures: ['urn:closed'] },
});

let kit: FeatureKit;
let features: Feature[];

beforeEach(async () => {
  features = [extra, closed, disco];
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    features,
    { config: { server: { name: 'Starling' } } },
  );
  for (const user of ['juliet', 'romeo', 'nurse']) await kit.addUser(user);
  await kit.store.rosters.setItem('juliet', {
    jid: 'romeo@example.com',
    subscription: 'from',
    askOut: false,
    approved: false,
    groups: [],
  });
  await kit.store.rosters.setItem('juliet', {
    jid: 'nurse@example.com',
    subscription: 'to',
    askOut: false,
    approved: false,
    groups: [],
  });
});

afterEach(async () => {
  await kit.close();
});

const SERVER_INFO =
  '<identity category="pubsub" type="pep"/><identity category="server" type="im" name="Starling"/>' +
  '<feature var="http://jabber.org/protocol/disco#info"/><feature var="http://jabber.org/protocol/disco#items"/>' +
  '<feature var="urn:extra"/>';

describe('the server', () => {
  it('answers disco#info with its identities and the features of every enabled feature', async () => {
    expect(
      await kit.iq(
        BALCONY,
        '<iq type="get" id="i1" to="example.com"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>',
      ),
    ).toBe(
      `<iq type="result" id="i1" to="${BALCONY}" from="example.com">` +
        `<query xmlns="http://jabber.org/protocol/disco#info">${SERVER_INFO}</query></iq>`,
    );
  });

  it('answers the caps node with the same info, and item-not-found for other nodes', async () => {
    const node = `${CAPS_NODE}#${serverCaps(kit.config, features).ver}`;
    expect(
      await kit.iq(
        BALCONY,
        `<iq type="get" id="i2" to="example.com"><query xmlns="http://jabber.org/protocol/disco#info" node="${node}"/></iq>`,
      ),
    ).toBe(
      `<iq type="result" id="i2" to="${BALCONY}" from="example.com">` +
        `<query xmlns="http://jabber.org/protocol/disco#info" node="${node}">${SERVER_INFO}</query></iq>`,
    );
    const other = await kit.iq(
      BALCONY,
      '<iq type="get" id="i3" to="example.com"><query xmlns="http://jabber.org/protocol/disco#info" node="x"/></iq>',
    );
    expect(errorOf(other)).toBe('cancel item-not-found');
  });

  it('has no items yet, and no nodes', async () => {
    expect(
      await kit.iq(
        BALCONY,
        '<iq type="get" id="t1" to="example.com"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>',
      ),
    ).toBe(
      `<iq type="result" id="t1" to="${BALCONY}" from="example.com"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
    );
    const node = await kit.iq(
      BALCONY,
      '<iq type="get" id="t2" to="example.com"><query xmlns="http://jabber.org/protocol/disco#items" node="x"/></iq>',
    );
    expect(errorOf(node)).toBe('cancel item-not-found');
  });
});

describe('an account', () => {
  const ACCOUNT_INFO =
    '<query xmlns="http://jabber.org/protocol/disco#info"><identity category="account" type="registered"/>' +
    '<feature var="http://jabber.org/protocol/disco#info"/><feature var="http://jabber.org/protocol/disco#items"/>' +
    '<feature var="urn:pep"/></query>';

  it('answers its own disco#info, addressed or not', async () => {
    expect(
      await kit.iq(
        BALCONY,
        '<iq type="get" id="a1"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>',
      ),
    ).toBe(`<iq type="result" id="a1" to="${BALCONY}">${ACCOUNT_INFO}</iq>`);
    expect(
      await kit.iq(
        BALCONY,
        `<iq type="get" id="a2" to="${JULIET}"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
      ),
    ).toBe(`<iq type="result" id="a2" to="${BALCONY}" from="${JULIET}">${ACCOUNT_INFO}</iq>`);
  });

  it('answers a contact with a presence subscription', async () => {
    expect(
      await kit.iq(
        ORCHARD,
        `<iq type="get" id="a3" to="${JULIET}"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
      ),
    ).toBe(`<iq type="result" id="a3" to="${ORCHARD}" from="${JULIET}">${ACCOUNT_INFO}</iq>`);
    expect(
      await kit.iq(
        ORCHARD,
        `<iq type="get" id="a4" to="${JULIET}"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
      ),
    ).toBe(
      `<iq type="result" id="a4" to="${ORCHARD}" from="${JULIET}"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
    );
  });

  it('looks unavailable to anyone else', async () => {
    for (const ns of ['disco#info', 'disco#items']) {
      const reply = await kit.iq(
        NURSE,
        `<iq type="get" id="a5" to="${JULIET}"><query xmlns="http://jabber.org/protocol/${ns}"/></iq>`,
      );
      expect(errorOf(reply)).toBe('cancel service-unavailable');
    }
  });

  it('has no nodes', async () => {
    for (const ns of ['disco#info', 'disco#items']) {
      const reply = await kit.iq(
        BALCONY,
        `<iq type="get" id="a6"><query xmlns="http://jabber.org/protocol/${ns}" node="n"/></iq>`,
      );
      expect(errorOf(reply)).toBe('cancel item-not-found');
    }
  });
});
