// XEP-0313 Message Archive Management with XEP-0059 paging and XEP-0359 stanza ids: Romeo and Juliet talk,
// then read their archives back over real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Element } from 'ltx';
import { startTestServer, type TestClient, type TestServer } from '../harness/index.ts';
import { attr, message, outcome, stanzaError } from './matchers.ts';
import { Cast, goOnline, online } from './steps.ts';

const NS_MAM = 'urn:xmpp:mam:2';
const NS_SID = 'urn:xmpp:sid:0';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_RSM = 'http://jabber.org/protocol/rsm';

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

const chat = (to: string, body: string): string =>
  `<message to='${to}' type='chat'><body>${body}</body></message>`;

/** One archived message as a query result shows it. */
interface Archived {
  readonly id: string;
  readonly body: string | null;
  readonly from: string | undefined;
  readonly stamp: string;
}

interface Answer {
  readonly reply: Element;
  readonly results: Archived[];
  readonly fin: Element | undefined;
}

let queries = 0;

/** A MAM query with optional form fields and RSM <set/> content; the results that came before the answer. */
async function mam(
  client: TestClient,
  fields: Record<string, string | string[]> = {},
  rsm = '',
): Promise<Answer> {
  const queryid = `mam-${++queries}`;
  const formFields = Object.entries(fields)
    .map(([name, value]) => {
      const values = (Array.isArray(value) ? value : [value]).map((v) => `<value>${v}</value>`).join('');
      return `<field var='${name}'>${values}</field>`;
    })
    .join('');
  const form =
    formFields === ''
      ? ''
      : `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS_MAM}</value></field>${formFields}</x>`;
  const set = rsm === '' ? '' : `<set xmlns='${NS_RSM}'>${rsm}</set>`;
  const reply = await client.iq(
    `<iq type='set'><query xmlns='${NS_MAM}' queryid='${queryid}'>${form}${set}</query></iq>`,
  );
  // The results come before the answer on the same stream, so they are all in the inbox by now.
  const ours = (el: Element): boolean => {
    const result = el.name === 'message' ? el.getChild('result', NS_MAM) : undefined;
    return result !== undefined && attr(result, 'queryid') === queryid;
  };
  const results: Archived[] = [];
  while (client.pending().some(ours)) {
    const wrapper = (await client.expect(ours)).getChild('result', NS_MAM);
    const forwarded = wrapper?.getChild('forwarded', NS_FORWARD);
    const archived = forwarded?.getChild('message');
    const delay = forwarded?.getChild('delay', 'urn:xmpp:delay');
    results.push({
      id: (wrapper && attr(wrapper, 'id')) ?? '',
      body: archived?.getChildText('body') ?? null,
      from: archived && attr(archived, 'from'),
      stamp: (delay && attr(delay, 'stamp')) ?? '',
    });
  }
  return { reply, results, fin: reply.getChild('fin', NS_MAM) };
}

const bodies = (answer: Answer): (string | null)[] => answer.results.map((r) => r.body);

/** The stanza-id an archive at `by` gave a delivered message. */
function stanzaId(el: Element, by: string): string | undefined {
  const found = el.getChildren('stanza-id', NS_SID).find((sid) => attr(sid, 'by') === by);
  return found === undefined ? undefined : attr(found, 'id');
}

/** Romeo and Juliet, both online, and the five lines they exchanged, with the stanza-ids each received. */
async function balconyScene(): Promise<{ romeo: TestClient; juliet: TestClient; ids: string[] }> {
  const romeo = await online(cast, 'romeo');
  const juliet = await online(cast, 'juliet');
  const lines: [TestClient, TestClient, string][] = [
    [romeo, juliet, 'But soft, what light through yonder window breaks?'],
    [juliet, romeo, 'Ay me!'],
    [romeo, juliet, 'She speaks.'],
    [juliet, romeo, 'O Romeo, Romeo, wherefore art thou Romeo?'],
    [romeo, juliet, 'Shall I hear more, or shall I speak at this?'],
  ];
  const ids: string[] = [];
  for (const [from, to, body] of lines) {
    await from.send(chat(to.bare, body));
    const got = await to.expect(message(from.jid, body));
    ids.push(stanzaId(got, to.bare) ?? 'none');
  }
  return { romeo, juliet, ids };
}

describe('archiving (XEP-0313 §3, XEP-0359)', () => {
  it('each side finds the whole conversation in order, under the stanza-ids the recipients got', async () => {
    const { romeo, juliet, ids } = await balconyScene();
    expect(ids.every((id) => id !== 'none')).toBe(true);

    const julietsArchive = await mam(juliet);
    const romeosArchive = await mam(romeo);

    const lines = [
      'But soft, what light through yonder window breaks?',
      'Ay me!',
      'She speaks.',
      'O Romeo, Romeo, wherefore art thou Romeo?',
      'Shall I hear more, or shall I speak at this?',
    ];
    expect(bodies(julietsArchive)).toEqual(lines);
    expect(bodies(romeosArchive)).toEqual(lines);
    expect(julietsArchive.results.map((r) => r.id)).toEqual(ids);
    expect(romeosArchive.results.map((r) => r.id)).toEqual(ids);
    expect(julietsArchive.results.map((r) => r.from)).toEqual([
      romeo.jid,
      juliet.jid,
      romeo.jid,
      juliet.jid,
      romeo.jid,
    ]);
    expect(outcome(julietsArchive.reply)).toBe('result');
    expect(attr(julietsArchive.fin!, 'complete')).toBe('true');
    const set = julietsArchive.fin?.getChild('set', NS_RSM);
    expect([set?.getChildText('first'), set?.getChildText('last'), set?.getChildText('count')]).toEqual([
      ids[0],
      ids[4],
      '5',
    ]);
  });

  it('archives a message that waited offline, and delivers it with the same stanza-id', async () => {
    const romeo = await online(cast, 'romeo');
    const julietName = await cast.account('juliet');
    const julietBare = cast.jid(julietName);

    await romeo.send(chat(julietBare, 'Read this when you wake'));
    expect(bodies(await mam(romeo))).toEqual(['Read this when you wake']);

    const juliet = await cast.login(julietName);
    await goOnline(juliet);
    const delivered = await juliet.expect(message(romeo.jid, 'Read this when you wake'));
    const archived = await mam(juliet);
    expect(bodies(archived)).toEqual(['Read this when you wake']);
    expect(archived.results[0]?.id).toBe(stanzaId(delivered, julietBare));
  });

  it('lets a sender and a recipient read their own writes at once', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');

    // The query goes out right behind the message: it travels behind the archive write.
    await romeo.send(chat(juliet.bare, 'Swear by the moon'));
    expect(bodies(await mam(romeo))).toEqual(['Swear by the moon']);

    await juliet.expect(message(romeo.jid, 'Swear by the moon'));
    expect(bodies(await mam(juliet))).toEqual(['Swear by the moon']);
  });

  it('keeps chat states out of the archive', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');

    await romeo.send(
      `<message to='${juliet.bare}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
    );
    await romeo.send(chat(juliet.bare, 'Anon, good nurse!'));
    await juliet.expect(message(romeo.jid, 'Anon, good nurse!'));

    expect(bodies(await mam(juliet))).toEqual(['Anon, good nurse!']);
  });
});

describe('filtering (XEP-0313 §4.1)', () => {
  it('by with: only the conversation with that contact', async () => {
    const { romeo, juliet } = await balconyScene();
    const nurse = await online(cast, 'nurse');
    await juliet.send(chat(nurse.bare, 'Go ask his name'));
    await nurse.expect(message(juliet.jid, 'Go ask his name'));

    expect(bodies(await mam(juliet, { with: nurse.bare }))).toEqual(['Go ask his name']);
    expect(await mam(juliet, { with: romeo.bare })).toMatchObject({ results: { length: 5 } });
    expect(bodies(await mam(romeo, { with: nurse.bare }))).toEqual([]);
  });

  it('by start and end: the messages stamped within, both ends included', async () => {
    const { juliet } = await balconyScene();
    const all = (await mam(juliet)).results;
    const second = all[1]!.stamp;
    const fourth = all[3]!.stamp;
    const within = all.filter((r) => r.stamp >= second && r.stamp <= fourth).map((r) => r.id);

    const answer = await mam(juliet, { start: second, end: fourth });

    expect(answer.results.map((r) => r.id)).toEqual(within);
    expect(within).toEqual(expect.arrayContaining([all[1]!.id, all[2]!.id, all[3]!.id]));
    expect(bodies(await mam(juliet, { start: '2999-01-01T00:00:00Z' }))).toEqual([]);
  });

  it('by after-id, before-id and ids (urn:xmpp:mam:2#extended)', async () => {
    const { juliet, ids } = await balconyScene();

    const between = await mam(juliet, { 'after-id': ids[0]!, 'before-id': ids[3]! });
    expect(between.results.map((r) => r.id)).toEqual([ids[1], ids[2]]);
    const picked = await mam(juliet, { ids: [ids[4]!, ids[1]!] });
    expect(picked.results.map((r) => r.id)).toEqual([ids[1], ids[4]]);
  });
});

describe('paging (XEP-0059, XEP-0313 §4.3)', () => {
  it('forward with max=2 and after, until complete', async () => {
    const { juliet, ids } = await balconyScene();

    const one = await mam(juliet, {}, '<max>2</max>');
    const two = await mam(
      juliet,
      {},
      `<max>2</max><after>${one.fin?.getChild('set', NS_RSM)?.getChildText('last') ?? ''}</after>`,
    );
    const three = await mam(
      juliet,
      {},
      `<max>2</max><after>${two.fin?.getChild('set', NS_RSM)?.getChildText('last') ?? ''}</after>`,
    );

    expect([one, two, three].map((page) => page.results.map((r) => r.id))).toEqual([
      [ids[0], ids[1]],
      [ids[2], ids[3]],
      [ids[4]],
    ]);
    expect([one, two, three].map((page) => attr(page.fin!, 'complete'))).toEqual(['false', 'false', 'true']);
  });

  it('backward with max=2 from the last page (empty before), until complete', async () => {
    const { romeo, ids } = await balconyScene();

    const last = await mam(romeo, {}, '<max>2</max><before/>');
    const middle = await mam(
      romeo,
      {},
      `<max>2</max><before>${last.fin?.getChild('set', NS_RSM)?.getChildText('first') ?? ''}</before>`,
    );
    const first = await mam(
      romeo,
      {},
      `<max>2</max><before>${middle.fin?.getChild('set', NS_RSM)?.getChildText('first') ?? ''}</before>`,
    );

    expect([last, middle, first].map((page) => page.results.map((r) => r.id))).toEqual([
      [ids[3], ids[4]],
      [ids[1], ids[2]],
      [ids[0]],
    ]);
    expect([last, middle, first].map((page) => attr(page.fin!, 'complete'))).toEqual([
      'false',
      'false',
      'true',
    ]);
  });
});

describe('discovery and errors', () => {
  it('the account advertises MAM and stanza ids, and offers the query form', async () => {
    const juliet = await cast.user('juliet');

    const info = await juliet.iq(
      `<iq type='get' to='${juliet.bare}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
    );
    const features = (info.getChild('query')?.getChildren('feature') ?? []).map((f) => attr(f, 'var'));
    expect(features).toEqual(expect.arrayContaining([NS_MAM, `${NS_MAM}#extended`, NS_SID]));

    const form = await juliet.iq(`<iq type='get'><query xmlns='${NS_MAM}'/></iq>`);
    const fields = form.getChild('query', NS_MAM)?.getChild('x', 'jabber:x:data')?.getChildren('field') ?? [];
    expect(fields.map((f) => attr(f, 'var'))).toEqual(
      expect.arrayContaining(['FORM_TYPE', 'with', 'start', 'end', 'after-id', 'before-id', 'ids']),
    );
  });

  it('answers item-not-found to an id the archive lacks, and touches nothing', async () => {
    const { juliet } = await balconyScene();

    const after = await mam(juliet, {}, '<after>no-such-message</after>');
    const ids = await mam(juliet, { ids: 'no-such-message' });

    expect([after, ids].map((a) => stanzaError(a.reply).condition)).toEqual([
      'item-not-found',
      'item-not-found',
    ]);
    expect(after.results).toEqual([]);
  });

  it('answers feature-not-implemented to an unknown field and bad-request to a bad date', async () => {
    const juliet = await cast.user('juliet');

    const unknown = await mam(juliet, { 'urn:example:free-text-search': 'moon' });
    const badDate = await mam(juliet, { start: 'the day after tomorrow' });

    expect(stanzaError(unknown.reply).condition).toBe('feature-not-implemented');
    expect(stanzaError(badDate.reply).condition).toBe('bad-request');
  });

  it('forbids reading another user’s archive', async () => {
    const { romeo, juliet } = await balconyScene();

    const reply = await romeo.iq(`<iq type='set' to='${juliet.bare}'><query xmlns='${NS_MAM}'/></iq>`);

    expect(stanzaError(reply).condition).toBe('forbidden');
    // Results would have come before the answer.
    expect(romeo.pending().filter((el) => el.getChild('result', NS_MAM) !== undefined)).toEqual([]);
  });
});

describe('with archives off (archive.enabled: false)', () => {
  let off: TestServer;
  let offCast: Cast;
  beforeAll(async () => {
    off = await startTestServer({ archive: { enabled: false } });
    offCast = new Cast(off);
  });
  afterAll(async () => {
    await offCast.leave();
    await off.stop();
  });

  it('delivers messages without stanza-ids, announces no MAM, and refuses MAM requests', async () => {
    const romeo = await online(offCast, 'romeo');
    const juliet = await online(offCast, 'juliet');

    await romeo.send(chat(juliet.bare, 'Good night, good night!'));
    const got = await juliet.expect(message(romeo.jid, 'Good night, good night!'));
    const info = await juliet.iq(
      `<iq type='get' to='${juliet.bare}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
    );
    const answer = await mam(juliet);

    expect(got.getChildren('stanza-id', NS_SID)).toEqual([]);
    const features = info
      .getChild('query', 'http://jabber.org/protocol/disco#info')
      ?.getChildren('feature')
      .map((feature) => attr(feature, 'var'));
    expect(features).toContain('http://jabber.org/protocol/disco#info');
    expect(features).not.toContain(NS_MAM);
    expect(features).not.toContain(NS_SID);
    expect(stanzaError(answer.reply).condition).toBe('service-unavailable');
    expect(answer.results).toEqual([]);
  });
});
