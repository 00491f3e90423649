// XEP-0030, 0092, 0199, 0202, 0012, 0054, 0049, 0191, 0077 and 0115: the server's IQ services and stream features.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, type Element } from 'ltx';
import { RawClient, rawLogin, streamHeader, startTestServer, type TestServer } from '../harness/index.ts';
import type { Match, TestClient } from '../harness/index.ts';
import {
  attr,
  bareJid,
  bounce,
  message,
  messageWithBody,
  outcome,
  presence,
  stanzaError,
} from './matchers.ts';
import { Cast, online, PASSWORD, subscribe } from './steps.ts';

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

const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const NS_BLOCKING = 'urn:xmpp:blocking';
const NS_REGISTER = 'jabber:iq:register';

const ping = (to: string): string => `<iq type='get' to='${to}'><ping xmlns='urn:xmpp:ping'/></iq>`;
const discoInfo = (to: string, node?: string, id?: string): string =>
  `<iq type='get' to='${to}'${id === undefined ? '' : ` id='${id}'`}>` +
  `<query xmlns='${NS_DISCO_INFO}'${node === undefined ? '' : ` node='${node}'`}/></iq>`;

/** The var of every <feature/> of a disco#info result. */
function featuresOf(reply: Element): string[] {
  return (reply.getChild('query', NS_DISCO_INFO)?.getChildren('feature') ?? []).map(
    (f) => attr(f, 'var') ?? '',
  );
}

function identitiesOf(reply: Element): { category: string | undefined; type: string | undefined }[] {
  return (reply.getChild('query', NS_DISCO_INFO)?.getChildren('identity') ?? []).map((identity) => ({
    category: attr(identity, 'category'),
    type: attr(identity, 'type'),
  }));
}

/** The last <stream:features/> the server sent on a raw connection. */
function lastFeatures(transcript: string): Element {
  const start = transcript.lastIndexOf('<stream:features');
  const end = transcript.indexOf('</stream:features>', start) + '</stream:features>'.length;
  return parse(transcript.slice(start, end));
}

/** Reads the IQ with this id from a raw connection. */
async function readIq(raw: RawClient, id: string): Promise<Element> {
  const text = await raw.read(new RegExp(`<iq\\b[^>]*\\bid=['"]${id}['"][^>]*?(?:/>|>[\\s\\S]*?</iq>)`));
  return parse(text.slice(text.lastIndexOf('<iq')));
}

/** A raw connection, secured with STARTTLS and not authenticated; with the features offered on it. */
async function securedStream(): Promise<{ raw: RawClient; features: Element }> {
  const raw = await RawClient.connect(server);
  raw.write(streamHeader(server.domain));
  await raw.read('</stream:features>');
  raw.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await raw.read(/<proceed\b[^>]*?(?:\/>|>\s*<\/proceed>)/);
  await raw.startTls(server);
  raw.write(streamHeader(server.domain));
  await raw.read('</stream:features>');
  return { raw, features: lastFeatures(raw.transcript) };
}

/** Tries a SASL PLAIN login and returns the server's <success/> or <failure/>. */
async function plainAuth(username: string, password: string): Promise<Element> {
  const { raw } = await securedStream();
  try {
    const credentials = Buffer.from(`\0${username}\0${password}`).toString('base64');
    raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${credentials}</auth>`);
    const text = await raw.read(/<success\b[^>]*?(?:\/>|>[\s\S]*?<\/success>)|<failure\b[\s\S]*?<\/failure>/);
    return parse(text.slice(Math.max(text.lastIndexOf('<success'), text.lastIndexOf('<failure'))));
  } finally {
    raw.destroy();
  }
}

/** XEP-0115 §5.1: the verification string of a disco#info <query/>, hashed with SHA-1 and base64-encoded. */
function capsVerification(query: Element): string {
  const value = (el: Element, name: string): string => attr(el, name) ?? '';
  const octets = (a: string, b: string): number =>
    Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  let s = '';
  const identities = query
    .getChildren('identity')
    .map((i) => [value(i, 'category'), value(i, 'type'), value(i, 'xml:lang'), value(i, 'name')] as const)
    .sort((a, b) => octets(a[0], b[0]) || octets(a[1], b[1]) || octets(a[2], b[2]) || octets(a[3], b[3]));
  for (const identity of identities) s += `${identity.join('/')}<`;
  const features = query.getChildren('feature').map((f) => value(f, 'var'));
  for (const feature of features.sort(octets)) s += `${feature}<`;
  const forms = query
    .getChildren('x', 'jabber:x:data')
    .flatMap((form) => {
      const fields = form.getChildren('field');
      const formType = fields.find((field) => value(field, 'var') === 'FORM_TYPE');
      // A form without FORM_TYPE is left out of the string.
      return formType
        ? [{ type: formType.getChildText('value') ?? '', fields: fields.filter((f) => f !== formType) }]
        : [];
    })
    .sort((a, b) => octets(a.type, b.type));
  for (const form of forms) {
    s += `${form.type}<`;
    for (const field of form.fields.sort((a, b) => octets(value(a, 'var'), value(b, 'var')))) {
      s += `${value(field, 'var')}<`;
      const values = field.getChildren('value').map((v) => v.getText());
      for (const v of values.sort(octets)) s += `${v}<`;
    }
  }
  return createHash('sha1').update(s, 'utf8').digest('base64');
}

/** A XEP-0191 push (block or unblock) to `owner` naming exactly `jids`. */
function blockingPush(owner: string, kind: 'block' | 'unblock', jids: readonly string[]): Match {
  return (el) => {
    if (el.name !== 'iq' || attr(el, 'type') !== 'set') return false;
    const from = attr(el, 'from');
    if (from !== undefined && from !== owner) return false;
    const payload = el.getChild(kind, NS_BLOCKING);
    if (!payload) return false;
    const items = payload
      .getChildren('item')
      .map((item) => attr(item, 'jid') ?? '')
      .sort();
    return JSON.stringify(items) === JSON.stringify([...jids].sort());
  };
}

async function blocklist(client: TestClient): Promise<string[]> {
  const reply = await client.iq(`<iq type='get'><blocklist xmlns='${NS_BLOCKING}'/></iq>`);
  expect(outcome(reply)).toBe('result');
  const list = reply.getChild('blocklist', NS_BLOCKING);
  expect(list).toBeDefined();
  return list!.getChildren('item').map((item) => attr(item, 'jid') ?? '');
}

describe('XEP-0030: Service Discovery', () => {
  it('the server is an IM server and lists the features it implements', async () => {
    const romeo = await cast.user('romeo');

    const info = await romeo.iq(discoInfo(server.domain));

    expect(outcome(info)).toBe('result');
    expect(identitiesOf(info)).toContainEqual({ category: 'server', type: 'im' });
    expect(featuresOf(info)).toEqual(
      expect.arrayContaining([
        NS_DISCO_INFO,
        NS_DISCO_ITEMS,
        'jabber:iq:version',
        'urn:xmpp:ping',
        'urn:xmpp:time',
        'jabber:iq:last',
        'vcard-temp',
        'jabber:iq:private',
        NS_BLOCKING,
        NS_REGISTER,
        'http://jabber.org/protocol/caps',
      ]),
    );
  });

  it('the server answers disco#items', async () => {
    const romeo = await cast.user('romeo');

    const items = await romeo.iq(
      `<iq type='get' to='${server.domain}'><query xmlns='${NS_DISCO_ITEMS}'/></iq>`,
    );

    expect(outcome(items)).toBe('result');
    expect(items.getChild('query', NS_DISCO_ITEMS)).toBeDefined();
  });

  it('the server answers for the user’s own account as a registered account', async () => {
    const romeo = await cast.user('romeo');

    const info = await romeo.iq(discoInfo(romeo.bare));

    expect(outcome(info)).toBe('result');
    expect(attr(info, 'from')).toBe(romeo.bare);
    expect(identitiesOf(info)).toContainEqual({ category: 'account', type: 'registered' });
  });

  it('the server does not reveal the account of someone who did not share presence: service-unavailable', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');

    const info = await romeo.iq(discoInfo(juliet.bare));

    expect(outcome(info)).toBe('error: service-unavailable');
  });
});

describe('XEP-0092: Software Version', () => {
  it('names the server Starling, with a version and without the operating system', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(
      `<iq type='get' to='${server.domain}'><query xmlns='jabber:iq:version'/></iq>`,
    );

    expect(outcome(reply)).toBe('result');
    const query = reply.getChild('query', 'jabber:iq:version');
    expect(query?.getChildText('name')).toBe('Starling');
    expect(query?.getChildText('version')).toMatch(/\S/);
    expect(query?.getChild('os')).toBeUndefined();
  });
});

describe('XEP-0199: XMPP Ping', () => {
  it('the server answers a ping', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(ping(server.domain));

    expect(outcome(reply)).toBe('result');
    expect(attr(reply, 'from')).toBe(server.domain);
  });

  it('the server answers a ping to the user’s own bare JID', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(ping(romeo.bare));

    expect(outcome(reply)).toBe('result');
    expect(attr(reply, 'from')).toBe(romeo.bare);
  });

  it('the server answers a ping over WebSocket (RFC 7395)', async () => {
    const romeo = await cast.user('romeo', { transport: 'websocket' });

    expect(outcome(await romeo.iq(ping(server.domain)))).toBe('result');
  });
});

describe('XEP-0202: Entity Time', () => {
  it('gives its time zone offset and the current UTC time', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(`<iq type='get' to='${server.domain}'><time xmlns='urn:xmpp:time'/></iq>`);

    expect(outcome(reply)).toBe('result');
    const time = reply.getChild('time', 'urn:xmpp:time');
    expect(time?.getChildText('tzo')).toMatch(/^(?:[+-]\d{2}:\d{2}|Z)$/);
    const utc = time?.getChildText('utc') ?? '';
    expect(utc).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$/);
    expect(Math.abs(Date.parse(utc) - Date.now())).toBeLessThan(60_000);
  });
});

describe('XEP-0012: Last Activity', () => {
  it('the server reports its uptime in seconds', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(`<iq type='get' to='${server.domain}'><query xmlns='jabber:iq:last'/></iq>`);

    expect(outcome(reply)).toBe('result');
    const seconds = attr(reply.getChild('query', 'jabber:iq:last')!, 'seconds');
    expect(seconds).toMatch(/^\d+$/);
  });

  it('a contact who logged out: seconds since then, and the status she left with', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);
    await juliet.send(`<presence type='unavailable'><status>Gone to Mantua</status></presence>`);
    await romeo.expect(presence(juliet.jid, 'unavailable'));
    await juliet.stop();

    const reply = await romeo.iq(`<iq type='get' to='${juliet.bare}'><query xmlns='jabber:iq:last'/></iq>`);

    expect(outcome(reply)).toBe('result');
    const query = reply.getChild('query', 'jabber:iq:last')!;
    expect(Number(attr(query, 'seconds'))).toBeGreaterThanOrEqual(0);
    expect(Number(attr(query, 'seconds'))).toBeLessThan(60);
    expect(query.getText()).toBe('Gone to Mantua');
  });

  it('someone not subscribed to the user’s presence is refused: forbidden', async () => {
    const mercutio = await cast.user('mercutio');
    const julietName = await cast.account('juliet');
    const juliet = await cast.login(julietName);
    await juliet.stop();

    const reply = await mercutio.iq(
      `<iq type='get' to='${cast.jid(julietName)}'><query xmlns='jabber:iq:last'/></iq>`,
    );

    expect(outcome(reply)).toBe('error: forbidden');
  });
});

describe('XEP-0054: vcard-temp', () => {
  it('stores the user’s vCard and returns it', async () => {
    const romeo = await cast.user('romeo');

    const set = await romeo.iq(
      `<iq type='set'><vCard xmlns='vcard-temp'><FN>Romeo Montague</FN><NICKNAME>Romeo</NICKNAME></vCard></iq>`,
    );
    expect(outcome(set)).toBe('result');

    const get = await romeo.iq(`<iq type='get'><vCard xmlns='vcard-temp'/></iq>`);
    expect(outcome(get)).toBe('result');
    const vcard = get.getChild('vCard', 'vcard-temp');
    expect(vcard?.getChildText('FN')).toBe('Romeo Montague');
    expect(vcard?.getChildText('NICKNAME')).toBe('Romeo');
  });

  it('returns another user’s vCard', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');
    await juliet.iq(`<iq type='set'><vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard></iq>`);

    const reply = await romeo.iq(`<iq type='get' to='${juliet.bare}'><vCard xmlns='vcard-temp'/></iq>`);

    expect(outcome(reply)).toBe('result');
    expect(attr(reply, 'from')).toBe(juliet.bare);
    expect(reply.getChild('vCard', 'vcard-temp')?.getChildText('FN')).toBe('Juliet Capulet');
  });

  it('refuses to set another user’s vCard, which stays as it was', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');
    await juliet.iq(`<iq type='set'><vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard></iq>`);

    const reply = await romeo.iq(
      `<iq type='set' to='${juliet.bare}'><vCard xmlns='vcard-temp'><FN>Forged</FN></vCard></iq>`,
    );

    expect(attr(reply, 'type')).toBe('error');
    const own = await juliet.iq(`<iq type='get'><vCard xmlns='vcard-temp'/></iq>`);
    expect(own.getChild('vCard', 'vcard-temp')?.getChildText('FN')).toBe('Juliet Capulet');
  });

  it('returns an empty vCard for a user who never set one', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(`<iq type='get'><vCard xmlns='vcard-temp'/></iq>`);

    expect(outcome(reply)).toBe('result');
    const vcard = reply.getChild('vCard', 'vcard-temp');
    expect(vcard).toBeDefined();
    expect(vcard!.getChildElements()).toHaveLength(0);
  });
});

describe('XEP-0049: Private XML Storage', () => {
  it('stores a fragment under its namespace and returns it', async () => {
    const romeo = await cast.user('romeo');

    const set = await romeo.iq(
      `<iq type='set'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:verona'><nick>Montague</nick></prefs></query></iq>`,
    );
    expect(outcome(set)).toBe('result');

    const get = await romeo.iq(
      `<iq type='get'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:verona'/></query></iq>`,
    );
    expect(outcome(get)).toBe('result');
    const stored = get.getChild('query', 'jabber:iq:private')?.getChild('prefs', 'urn:example:verona');
    expect(stored?.getChildText('nick')).toBe('Montague');
  });

  it('refuses access to another user’s storage: forbidden', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');

    const reply = await romeo.iq(
      `<iq type='get' to='${juliet.bare}'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:verona'/></query></iq>`,
    );

    expect(outcome(reply)).toBe('error: forbidden');
  });

  it('refuses the reserved jabber:client namespace: not-acceptable', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(
      `<iq type='set'><query xmlns='jabber:iq:private'><message xmlns='jabber:client'/></query></iq>`,
    );

    expect(outcome(reply)).toBe('error: not-acceptable');
  });
});

describe('XEP-0191: Blocking Command', () => {
  it('a new user’s blocklist is empty', async () => {
    const juliet = await cast.user('juliet');

    expect(await blocklist(juliet)).toEqual([]);
  });

  it('blocking is pushed to every resource that asked for the blocklist, and stops the blocked user’s messages', async () => {
    const tybalt = await cast.user('tybalt');
    const julietName = await cast.account('juliet');
    const balcony = await cast.login(julietName, { resource: 'balcony' });
    const chamber = await cast.login(julietName, { resource: 'chamber' });
    await blocklist(balcony);
    await blocklist(chamber);

    const reply = await balcony.iq(
      `<iq type='set'><block xmlns='${NS_BLOCKING}'><item jid='${tybalt.bare}'/></block></iq>`,
    );

    expect(outcome(reply)).toBe('result');
    await balcony.expect(blockingPush(balcony.bare, 'block', [tybalt.bare]));
    await chamber.expect(blockingPush(chamber.bare, 'block', [tybalt.bare]));
    expect(await blocklist(balcony)).toEqual([tybalt.bare]);

    await tybalt.send(`<message to='${balcony.jid}' type='chat'><body>Thou art a villain</body></message>`);
    await tybalt.send(`<message to='${balcony.bare}' type='chat'><body>Draw!</body></message>`);
    await balcony.expectNothing(messageWithBody('Thou art a villain'), 500);
    await balcony.expectNothing(messageWithBody('Draw!'));
    await chamber.expectNothing(messageWithBody('Draw!'));
  });

  it('the blocker’s own messages to the blocked JID bounce with not-acceptable and <blocked/>', async () => {
    const tybalt = await cast.user('tybalt');
    const juliet = await cast.user('juliet');
    await juliet.iq(`<iq type='set'><block xmlns='${NS_BLOCKING}'><item jid='${tybalt.bare}'/></block></iq>`);

    await juliet.send(`<message to='${tybalt.jid}' id='blk1' type='chat'><body>Hence!</body></message>`);

    const error = await juliet.expect(bounce('message', 'blk1'));
    expect(stanzaError(error).condition).toBe('not-acceptable');
    expect(stanzaError(error).error?.getChild('blocked', 'urn:xmpp:blocking:errors')).toBeDefined();
    await tybalt.expectNothing(messageWithBody('Hence!'));
  });

  it('unblocking restores delivery', async () => {
    const tybalt = await cast.user('tybalt');
    const juliet = await cast.user('juliet');
    await blocklist(juliet);
    await juliet.iq(`<iq type='set'><block xmlns='${NS_BLOCKING}'><item jid='${tybalt.bare}'/></block></iq>`);
    await juliet.expect(blockingPush(juliet.bare, 'block', [tybalt.bare]));

    const reply = await juliet.iq(
      `<iq type='set'><unblock xmlns='${NS_BLOCKING}'><item jid='${tybalt.bare}'/></unblock></iq>`,
    );

    expect(outcome(reply)).toBe('result');
    await juliet.expect(blockingPush(juliet.bare, 'unblock', [tybalt.bare]));
    await tybalt.send(`<message to='${juliet.jid}' type='chat'><body>Peace, then</body></message>`);
    await juliet.expect(message(tybalt.jid, 'Peace, then'));
  });

  it('unblock with no items empties the blocklist', async () => {
    const juliet = await cast.user('juliet');
    const tybalt = cast.jid('tybalt-blocked');
    const paris = cast.jid('paris-blocked');
    await blocklist(juliet);
    await juliet.iq(
      `<iq type='set'><block xmlns='${NS_BLOCKING}'><item jid='${tybalt}'/><item jid='${paris}'/></block></iq>`,
    );
    await juliet.expect(blockingPush(juliet.bare, 'block', [tybalt, paris]));

    const reply = await juliet.iq(`<iq type='set'><unblock xmlns='${NS_BLOCKING}'/></iq>`);

    expect(outcome(reply)).toBe('result');
    await juliet.expect(blockingPush(juliet.bare, 'unblock', []));
    expect(await blocklist(juliet)).toEqual([]);
  });
});

describe('XEP-0077: In-Band Registration', () => {
  it('registers an account before authentication, which then logs in, changes its password and removes itself', async () => {
    const username = 'benvolio';

    // After STARTTLS the server offers registration.
    const { raw, features } = await securedStream();
    expect(features.getChild('register', 'http://jabber.org/features/iq-register')).toBeDefined();

    raw.write(`<iq type='get' id='reg1'><query xmlns='${NS_REGISTER}'/></iq>`);
    const form = await readIq(raw, 'reg1');
    expect(outcome(form)).toBe('result');
    const fields = form.getChild('query', NS_REGISTER);
    expect(fields?.getChild('username')).toBeDefined();
    expect(fields?.getChild('password')).toBeDefined();

    raw.write(
      `<iq type='set' id='reg2'><query xmlns='${NS_REGISTER}'><username>${username}</username><password>first-pass</password></query></iq>`,
    );
    expect(outcome(await readIq(raw, 'reg2'))).toBe('result');
    raw.destroy();

    // The same name again: conflict.
    const second = await securedStream();
    second.raw.write(
      `<iq type='set' id='reg3'><query xmlns='${NS_REGISTER}'><username>${username}</username><password>other</password></query></iq>`,
    );
    expect(outcome(await readIq(second.raw, 'reg3'))).toBe('error: conflict');
    second.raw.destroy();

    // The new account logs in and changes its password.
    const benvolio = await cast.login(username, { password: 'first-pass' });
    expect(bareJid(benvolio.jid)).toBe(cast.jid(username));
    const change = await benvolio.iq(
      `<iq type='set' to='${server.domain}'><query xmlns='${NS_REGISTER}'><username>${username}</username><password>second-pass</password></query></iq>`,
    );
    expect(outcome(change)).toBe('result');
    await benvolio.stop();
    expect((await plainAuth(username, 'first-pass')).name).toBe('failure');
    const again = await cast.login(username, { password: 'second-pass' });
    expect(outcome(await again.iq(ping(server.domain)))).toBe('result');
    await again.stop();

    // It removes itself: the session is closed and the account is gone.
    const last = await RawClient.connect(server);
    await rawLogin(last, server, username, 'second-pass');
    last.write(`<iq type='set' id='unreg1'><query xmlns='${NS_REGISTER}'><remove/></query></iq>`);
    const rest = await last.read('</stream:stream>');
    expect(rest).not.toMatch(/<iq\b[^>]*type=['"]error['"]/);
    await last.closed;
    const failure = await plainAuth(username, 'second-pass');
    expect(failure.name).toBe('failure');
    expect(failure.getChild('not-authorized')).toBeDefined();
  });
});

describe('XEP-0115: Entity Capabilities', () => {
  it('the stream features after authentication carry the hash of the server’s disco#info', async () => {
    const username = await cast.account('romeo');
    const raw = await RawClient.connect(server);
    try {
      await rawLogin(raw, server, username, PASSWORD);
      const caps = lastFeatures(raw.transcript).getChild('c', 'http://jabber.org/protocol/caps');
      expect(caps).toBeDefined();
      expect(attr(caps!, 'hash')).toBe('sha-1');
      const node = attr(caps!, 'node');
      const ver = attr(caps!, 'ver');
      expect(node).toBeDefined();

      raw.write(discoInfo(server.domain, undefined, 'caps1'));
      const reply = await readIq(raw, 'caps1');
      const features = featuresOf(reply);
      expect(new Set(features).size).toBe(features.length);
      expect(ver).toBe(capsVerification(reply.getChild('query', NS_DISCO_INFO)!));

      // The same answer is given for the node#ver the server advertised.
      raw.write(discoInfo(server.domain, `${node!}#${ver!}`, 'caps2'));
      const byNode = (await readIq(raw, 'caps2')).getChild('query', NS_DISCO_INFO)!;
      expect(attr(byNode, 'node')).toBe(`${node!}#${ver!}`);
      expect(capsVerification(byNode)).toBe(ver);
    } finally {
      raw.destroy();
    }
  });
});
