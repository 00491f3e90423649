// XEP-0191: the blocklist commands and pushes, and what blocking does to stanzas in both directions.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import type { Role } from '@starling/core';
import type { Subscription } from '@starling/ports';
import { openSqliteStore } from '@starling/store';
import { Jid, parseTrusted } from '@starling/xmpp';
import { errorOf, FeatureKit, withoutId } from './test-kit.ts';
import blocking, { isBlocked } from './xep-0191-blocking.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const CHAMBER = `${JULIET}/chamber`;
const ROMEO = 'romeo@example.com';
const ORCHARD = `${ROMEO}/orchard`;
const NURSE = 'nurse@example.com';
const KITCHEN = `${NURSE}/kitchen`;
let kit: FeatureKit;
let opened: FeatureKit[] = [];

async function open(role: Role = 'router'): Promise<void> {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [blocking],
    { role },
  );
  opened.push(kit);
  for (const user of ['juliet', 'romeo', 'nurse']) await kit.addUser(user);
}

async function contact(jid: string, subscription: Subscription): Promise<void> {
  await kit.store.rosters.setItem('juliet', {
    jid,
    subscription,
    askOut: false,
    approved: false,
    groups: [],
  });
}

function command(name: string, jids: string[] = [], id = 'b1'): string {
  const items = jids.map((jid) => `<item jid="${jid}"/>`).join('');
  return `<iq type="set" id="${id}"><${name} xmlns="urn:xmpp:blocking">${items}</${name}></iq>`;
}

const GET = '<iq type="get" id="g"><blocklist xmlns="urn:xmpp:blocking"/></iq>';

afterEach(async () => {
  for (const each of opened) await each.close();
  opened = [];
});

describe('JID matching', () => {
  const list = new Set(['romeo@example.com', 'evil.com', 'example.org/bot', 'nurse@example.com/kitchen']);
  it.each([
    ['romeo@example.com', true],
    ['romeo@example.com/orchard', true],
    ['evil.com', true],
    ['anyone@evil.com/x', true],
    ['example.org/bot', true],
    ['example.org', false],
    ['user@example.org/bot', false],
    ['nurse@example.com/kitchen', true],
    ['nurse@example.com', false],
    ['nurse@example.com/garden', false],
    ['juliet@example.com', false],
  ])('%s is blocked: %s', (jid, blocked) => {
    expect(isBlocked(list, Jid.parse(jid))).toBe(blocked);
  });
});

describe('blocklist commands', () => {
  beforeEach(async () => {
    await open();
    // §3.3: pushes go to the resources that asked for the blocklist, whether or not they fetched the roster.
    await kit.bind(BALCONY);
    await kit.bind(CHAMBER, { interested: true });
    await kit.bind(`${JULIET}/quiet`, { interested: true });
    await kit.iq(BALCONY, GET);
    await kit.iq(CHAMBER, GET);
  });

  it('returns an empty blocklist, then the blocked JIDs', async () => {
    expect(await kit.iq(BALCONY, GET)).toBe(
      `<iq type="result" id="g" to="${BALCONY}"><blocklist xmlns="urn:xmpp:blocking"/></iq>`,
    );
    await kit.iq(BALCONY, command('block', [ROMEO, 'Evil.COM']));
    expect(await kit.iq(BALCONY, GET)).toBe(
      `<iq type="result" id="g" to="${BALCONY}"><blocklist xmlns="urn:xmpp:blocking">` +
        `<item jid="evil.com"/><item jid="${ROMEO}"/></blocklist></iq>`,
    );
  });

  it('blocks, answers, and pushes the block to every resource that requested the blocklist', async () => {
    expect(await kit.iq(BALCONY, command('block', [ROMEO]))).toBe(
      `<iq type="result" id="b1" to="${BALCONY}"/>`,
    );
    const push = `<block xmlns="urn:xmpp:blocking"><item jid="${ROMEO}"/></block>`;
    expect(kit.take(BALCONY).map(withoutId)).toEqual([`<iq type="set" to="${BALCONY}">${push}</iq>`]);
    expect(kit.take(CHAMBER).map(withoutId)).toEqual([`<iq type="set" to="${CHAMBER}">${push}</iq>`]);
    expect(kit.take(`${JULIET}/quiet`)).toEqual([]);
  });

  it('refuses an empty block and invalid JIDs', async () => {
    expect(errorOf(await kit.iq(BALCONY, command('block')))).toBe('modify bad-request');
    expect(errorOf(await kit.iq(BALCONY, command('block', ['a@b@c'])))).toBe('modify jid-malformed');
    expect(await kit.store.blocklists.list('juliet')).toEqual([]);
  });

  it("refuses another account's blocklist", async () => {
    await kit.bind(ORCHARD);
    const reply = await kit.iq(
      ORCHARD,
      `<iq type="get" id="x" to="${JULIET}"><blocklist xmlns="urn:xmpp:blocking"/></iq>`,
    );
    expect(errorOf(reply)).toBe('auth forbidden');
  });

  it('unblocks some JIDs, then all, pushing each change', async () => {
    await kit.iq(BALCONY, command('block', [ROMEO, NURSE, 'evil.com']));
    kit.take(BALCONY);
    expect(await kit.iq(BALCONY, command('unblock', [NURSE], 'u1'))).toBe(
      `<iq type="result" id="u1" to="${BALCONY}"/>`,
    );
    expect(await kit.store.blocklists.list('juliet')).toEqual(['evil.com', ROMEO]);
    await kit.iq(BALCONY, command('unblock', [], 'u2'));
    expect(await kit.store.blocklists.list('juliet')).toEqual([]);
    expect(kit.take(BALCONY).map(withoutId)).toEqual([
      `<iq type="set" to="${BALCONY}"><unblock xmlns="urn:xmpp:blocking"><item jid="${NURSE}"/></unblock></iq>`,
      `<iq type="set" to="${BALCONY}"><unblock xmlns="urn:xmpp:blocking"/></iq>`,
    ]);
  });
});

describe('presence on block and unblock', () => {
  beforeEach(async () => {
    await open();
    await kit.bind(BALCONY, { presence: '<presence><show>away</show></presence>' });
    await kit.bind(CHAMBER, { available: false });
    await kit.bind(ORCHARD);
    await kit.bind(KITCHEN);
  });

  it('sends unavailable from each available resource to blocked subscribers only', async () => {
    await contact(ROMEO, 'from');
    await contact(NURSE, 'to');
    await kit.iq(BALCONY, command('block', [ROMEO, NURSE]));
    expect(kit.take(ORCHARD)).toEqual([`<presence type="unavailable" from="${BALCONY}" to="${ROMEO}"/>`]);
    expect(kit.take(KITCHEN)).toEqual([]);
  });

  it('sends the current presence to subscribers when they are unblocked', async () => {
    await contact(ROMEO, 'both');
    await kit.iq(BALCONY, command('block', ['example.com']));
    kit.take(ORCHARD);
    await kit.iq(BALCONY, command('unblock'));
    expect(kit.take(ORCHARD)).toEqual([
      `<presence from="${BALCONY}" to="${ROMEO}"><show>away</show></presence>`,
    ]);
  });
});

describe('stanzas from a blocked JID', () => {
  beforeEach(async () => {
    await open();
    await kit.bind(BALCONY);
    await kit.bind(ORCHARD);
    await kit.iq(BALCONY, command('block', [ROMEO]));
  });

  async function route(stanza: string): Promise<void> {
    await kit.routing.route(parseTrusted(stanza));
  }

  it('never reach the user; messages and IQ requests are answered with service-unavailable', async () => {
    await route(`<message type="chat" id="m" from="${ORCHARD}" to="${JULIET}"><body>hi</body></message>`);
    await route(`<message type="error" from="${ORCHARD}" to="${JULIET}"/>`);
    await route(`<presence from="${ORCHARD}" to="${BALCONY}"/>`);
    await route(
      `<iq type="get" id="i" from="${ORCHARD}" to="${BALCONY}"><query xmlns="jabber:iq:version"/></iq>`,
    );
    await route(`<iq type="result" id="r" from="${ORCHARD}" to="${BALCONY}"/>`);
    expect(kit.take(BALCONY)).toEqual([]);
    expect(
      kit.take(ORCHARD).map((reply) => `${errorOf(reply) ?? ''} ${parseTrusted(reply).attrs.id as string}`),
    ).toEqual(['cancel service-unavailable m', 'cancel service-unavailable i']);
  });

  it('reach the user again at once after an unblock', async () => {
    await route(`<presence from="${ORCHARD}" to="${JULIET}"/>`);
    expect(kit.take(BALCONY)).toEqual([]);
    await kit.iq(BALCONY, command('unblock', [ROMEO]));
    const chat = `<message type="chat" from="${ORCHARD}" to="${JULIET}"><body>hi</body></message>`;
    await route(chat);
    expect(kit.take(BALCONY)).toEqual([chat]);
  });
});

describe('stanzas to a blocked JID', () => {
  beforeEach(async () => {
    await open();
    await kit.bind(BALCONY);
    await kit.iq(BALCONY, command('block', [ROMEO]));
  });

  async function outbound(stanza: string): Promise<string | undefined> {
    const el = parseTrusted(stanza);
    return kit.host.hooks.run('stanza-outbound', {
      stanza: el,
      from: Jid.parse(el.attrs.from as string),
      to: Jid.parse(el.attrs.to as string),
    });
  }

  it('are stopped and answered with not-acceptable and <blocked/>', async () => {
    expect(
      await outbound(
        `<message type="chat" id="m" from="${BALCONY}" to="${ORCHARD}"><body>x</body></message>`,
      ),
    ).toBe('handled');
    expect(kit.take(BALCONY)).toEqual([
      `<message type="error" id="m" to="${BALCONY}" from="${ORCHARD}"><error type="cancel">` +
        '<not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><blocked xmlns="urn:xmpp:blocking:errors"/>' +
        '</error></message>',
    ]);
  });

  it('are stopped silently when they are errors or results', async () => {
    expect(await outbound(`<message type="error" from="${BALCONY}" to="${ROMEO}"/>`)).toBe('handled');
    expect(await outbound(`<iq type="result" id="r" from="${BALCONY}" to="${ORCHARD}"/>`)).toBe('handled');
    expect(kit.take(BALCONY)).toEqual([]);
  });

  it('pass when the JID is not blocked', async () => {
    expect(await outbound(`<message from="${BALCONY}" to="${NURSE}"/>`)).toBeUndefined();
  });
});

describe('in the presence role', () => {
  it('filters inbound stanzas but takes no commands', async () => {
    await open('presence');
    await kit.bind(BALCONY);
    await kit.store.blocklists.add('juliet', [ROMEO]);
    expect(errorOf(await kit.iq(BALCONY, GET))).toBe('cancel service-unavailable');
    await kit.routing.route(parseTrusted(`<presence from="${ORCHARD}" to="${JULIET}"/>`));
    expect(kit.take(BALCONY)).toEqual([]);
  });
});
