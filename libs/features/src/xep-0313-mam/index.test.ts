// XEP-0313 and XEP-0359 end to end inside one host: what the router archives and tags, and what the
// archive role answers, fed with the very records the router published.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import {
  decodeArchiveEnvelope,
  TOPIC_ARCHIVE,
  type ArchiveWriteEnvelope,
  type MamQueryEnvelope,
} from '@starling/core';
import type { ArchiveEntry, ArchiveStore, SessionRecord, Store } from '@starling/ports';
import { waitFor } from '@starling/ports/contracts';
import { openSqliteStore } from '@starling/store';
import { attr, Jid, parseTrusted, type Element } from '@starling/xmpp';
import { errorOf, FeatureKit } from '../test-kit.ts';
import offline from '../xep-0160-offline.ts';
import resultSetManagement from '../xep-0059-rsm.ts';
import blocking from '../xep-0191-blocking.ts';
import stanzaIds from '../xep-0359-stanza-ids.ts';
import { createArchiveHandler, type ArchiveHandler } from './archive-handler.ts';
import { MAX_UNSTORED, MAX_UNSTORED_CHARS } from './archiving.ts';
import mam from './index.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ROMEO = 'romeo@example.com';
const ORCHARD = `${ROMEO}/orchard`;
const NS_SID = 'urn:xmpp:sid:0';
let kit: FeatureKit;
let archive: ArchiveHandler;
let balcony: SessionRecord;
let orchard: SessionRecord;
/** How many of the kit's published records were already handed to the archive. */
let fed = 0;

beforeEach(async () => {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [blocking, offline, mam, stanzaIds, resultSetManagement],
  );
  archive = createArchiveHandler(kit.host.context);
  fed = 0;
  for (const user of ['juliet', 'romeo', 'nurse']) await kit.addUser(user);
  balcony = await kit.bind(BALCONY);
  orchard = await kit.bind(ORCHARD);
});

afterEach(async () => {
  await kit.close();
});

/** The archive writes published since the last call. */
function writes(): ArchiveWriteEnvelope[] {
  const fresh = kit.published.slice(fed);
  fed = kit.published.length;
  return fresh
    .filter((record) => record.topic === TOPIC_ARCHIVE)
    .map((record) => decodeArchiveEnvelope(record.value))
    .filter((envelope): envelope is ArchiveWriteEnvelope => envelope.t === 'archive-write');
}

/** Routes a message as the router does after its sender's checks, and stores what it archived. */
async function route(xml: string): Promise<ArchiveWriteEnvelope[]> {
  await kit.routing.route(parseTrusted(xml));
  const published = writes();
  for (const write of published) await archive.write(write);
  return published;
}

const chat = (from: string, to: string, body: string, extra = '') =>
  `<message type="chat" from="${from}" to="${to}"><body>${body}</body>${extra}</message>`;

/** Sends a MAM request from `session` straight to the archive handler; returns what reached the session. */
async function request(session: SessionRecord, iq: string): Promise<Element[]> {
  const stanza = parseTrusted(iq);
  stanza.attrs.from = session.jid;
  const envelope: MamQueryEnvelope = {
    t: 'mam-query',
    id: randomUUID(),
    owner: Jid.parse(session.jid).bare().toString(),
    from: session.jid,
    edgeId: session.edgeId,
    sessionId: session.sessionId,
    ts: Date.now(),
    xml: stanza.toString(),
  };
  await archive.query(envelope);
  return kit.take(session.jid).map((xml) => parseTrusted(xml));
}

function mamSet(form = '', rsm = '', attrs = ''): string {
  const x = form === '' ? '' : `<x xmlns="jabber:x:data" type="submit">${form}</x>`;
  const set = rsm === '' ? '' : `<set xmlns="http://jabber.org/protocol/rsm">${rsm}</set>`;
  return `<iq type="set" id="q"><query xmlns="urn:xmpp:mam:2"${attrs}>${x}${set}</query></iq>`;
}

/** The body of each result message and the `<fin/>` of the final IQ. */
function results(stanzas: Element[]): { bodies: string[]; ids: string[]; fin: Element | undefined } {
  const messages = stanzas.filter((s) => s.name === 'message');
  const iq = stanzas.at(-1);
  return {
    bodies: messages.map(
      (m) => m.getChild('result')?.getChild('forwarded')?.getChild('message')?.getChildText('body') ?? '?',
    ),
    ids: messages.map((m) => String(m.getChild('result')?.attrs.id)),
    fin: iq?.name === 'iq' ? iq.getChild('fin', 'urn:xmpp:mam:2') : undefined,
  };
}

describe('archiving on the router (XEP-0313 §5.1.1, XEP-0359)', () => {
  it('writes a message to both archives under one id, which the recipient gets as its stanza-id', async () => {
    const published = await route(chat(ORCHARD, JULIET, 'But soft'));
    const [delivered] = kit.take(BALCONY).map((xml) => parseTrusted(xml));
    const stanzaId = delivered?.getChild('stanza-id', NS_SID);
    expect(stanzaId?.attrs).toEqual({ xmlns: NS_SID, by: JULIET, id: expect.any(String) as string });
    const id = String(stanzaId?.attrs.id);
    expect(
      published.map(({ owner, with: other, direction, stanzaId: sid }) => [owner, other, direction, sid]),
    ).toEqual([
      [JULIET, ROMEO, 'in', id],
      [ROMEO, JULIET, 'out', id],
    ]);
    // The archived copy is the message as sent: no stanza-id meant for the recipient only.
    expect(published[0]?.xml).toBe(
      `<message type="chat" from="${ORCHARD}" to="${JULIET}" xmlns="jabber:client"><body>But soft</body></message>`,
    );
    expect(kit.published.filter((r) => r.topic === TOPIC_ARCHIVE).map((r) => r.key)).toEqual([JULIET, ROMEO]);
  });

  it('archives a message stored offline, which keeps its stanza-id for the flush', async () => {
    const published = await route(chat(BALCONY, 'romeo@example.com/gone', 'Wherefore'));
    expect(published.map((w) => w.owner)).toEqual([ROMEO, JULIET]);
    // Romeo's only session is the orchard: route to the nurse instead, who has none.
    const toNurse = await route(chat(BALCONY, 'nurse@example.com', 'Go to him'));
    expect(toNurse.map((w) => w.owner)).toEqual(['nurse@example.com', JULIET]);
    const [stored] = await kit.store.offline.list('nurse');
    expect(parseTrusted(stored?.stanza ?? '<x/>').getChild('stanza-id', NS_SID)?.attrs.id).toBe(
      toNurse[0]?.stanzaId,
    );
  });

  it('archives nothing that is not conversation, or that asks not to be stored', async () => {
    const quiet = [
      `<message type="chat" from="${ORCHARD}" to="${JULIET}"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`,
      `<message type="headline" from="${ORCHARD}" to="${JULIET}"><body>news</body></message>`,
      `<message type="error" from="${ORCHARD}" to="${JULIET}"><body>x</body><error type="cancel"/></message>`,
      chat(ORCHARD, JULIET, 'secret', '<no-permanent-store xmlns="urn:xmpp:hints"/>'),
      chat(ORCHARD, JULIET, 'secret', '<no-store xmlns="urn:xmpp:hints"/>'),
    ];
    for (const xml of quiet) expect(await route(xml)).toEqual([]);
    for (const delivered of kit.take(BALCONY)) expect(delivered).not.toContain(NS_SID);
  });

  it('archives bodiless messages that ask to be stored or carry encrypted content', async () => {
    const kept = [
      `<message type="chat" from="${ORCHARD}" to="${JULIET}"><store xmlns="urn:xmpp:hints"/><received xmlns="urn:xmpp:receipts" id="r"/></message>`,
      `<message from="${ORCHARD}" to="${JULIET}"><encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1"/></encrypted></message>`,
    ];
    for (const xml of kept) expect(await route(xml)).toHaveLength(2);
  });

  it('archives nothing for an unknown account or a blocked sender, and one copy of a note to oneself', async () => {
    expect(await route(chat(ORCHARD, 'ghost@example.com', 'Anyone?'))).toEqual([]);
    expect(kit.take(ORCHARD).map(errorOf)).toEqual(['cancel service-unavailable']);
    await kit.store.blocklists.add('juliet', [ROMEO]);
    expect(await route(chat(ORCHARD, JULIET, 'Blocked'))).toEqual([]);
    expect((await route(chat(ORCHARD, ROMEO, 'Remember'))).map((w) => [w.owner, w.with])).toEqual([
      [ROMEO, ROMEO],
    ]);
  });

  it('archives a message from the server in the recipient’s archive only', async () => {
    const published = await route(
      `<message from="example.com" to="${JULIET}"><body>Welcome</body></message>`,
    );
    expect(published.map((w) => [w.owner, w.with, w.direction])).toEqual([[JULIET, 'example.com', 'in']]);
  });

  it('drops stanza-ids a sender forged for this server, keeping those of other entities', async () => {
    await route(
      chat(
        ORCHARD,
        JULIET,
        'Trust me',
        `<stanza-id xmlns="${NS_SID}" by="${JULIET}" id="forged"/><stanza-id xmlns="${NS_SID}" by="room@muc.example.org" id="theirs"/>`,
      ),
    );
    const [delivered] = kit.take(BALCONY).map((xml) => parseTrusted(xml));
    const ids = delivered
      ?.getChildren('stanza-id', NS_SID)
      .map((el) => `${String(el.attrs.by)} ${String(el.attrs.id)}`);
    expect(ids).toHaveLength(2);
    expect(ids?.[0]).toBe('room@muc.example.org theirs');
    expect(ids?.[1]).toMatch(new RegExp(`^${JULIET} (?!forged)`));
    // Also when the message is not archived at all.
    await route(
      `<message type="headline" from="${ORCHARD}" to="${JULIET}"><stanza-id xmlns="${NS_SID}" by="example.com" id="f"/></message>`,
    );
    expect(kit.take(BALCONY)).toEqual([`<message type="headline" from="${ORCHARD}" to="${JULIET}"/>`]);
  });
});

describe('MAM requests on the router', () => {
  it('hands a request to the own archive over to the archive topic, keyed by the account', async () => {
    const stanza = parseTrusted('<iq type="set" id="q1"><query xmlns="urn:xmpp:mam:2" queryid="f"/></iq>');
    stanza.attrs.from = BALCONY;
    const origin = { edgeId: balcony.edgeId, sessionId: balcony.sessionId };
    const from = Jid.parse(BALCONY);
    expect(await kit.host.hooks.run('account-iq', { stanza, from, origin })).toBe('handled');
    const record = kit.published.at(-1);
    expect(record?.topic).toBe(TOPIC_ARCHIVE);
    expect(record?.key).toBe(JULIET);
    expect(decodeArchiveEnvelope(record?.value ?? '{}')).toMatchObject({
      t: 'mam-query',
      owner: JULIET,
      from: BALCONY,
      edgeId: balcony.edgeId,
      sessionId: balcony.sessionId,
      xml: stanza.toString(),
    });
    // Not its business: other payloads, and requests with no stream to answer.
    const ping = parseTrusted('<iq type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq>');
    expect(await kit.host.hooks.run('account-iq', { stanza: ping, from, origin })).toBeUndefined();
    const noStream = { edgeId: '', sessionId: '' };
    expect(await kit.host.hooks.run('account-iq', { stanza, from, origin: noStream })).toBeUndefined();
  });

  it('forbids requests to another user’s archive', async () => {
    const reply = await kit.iq(
      ORCHARD,
      `<iq type="set" id="q" to="${JULIET}"><query xmlns="urn:xmpp:mam:2"/></iq>`,
    );
    expect(errorOf(reply)).toBe('auth forbidden');
  });

  it('advertises MAM, its extended fields, RSM and stanza ids on the account', () => {
    const features = kit.host.context.features.flatMap((f) => f.disco?.accountFeatures ?? []);
    expect(features).toEqual([
      'urn:xmpp:mam:2',
      'urn:xmpp:mam:2#extended',
      'urn:xmpp:sid:0',
      'http://jabber.org/protocol/rsm',
    ]);
  });
});

describe('the archive role (XEP-0313 §4)', () => {
  /** Romeo and Juliet exchange five messages, one millisecond apart at most. */
  async function converse(): Promise<string[]> {
    const ids: string[] = [];
    for (const [from, to, body] of [
      [ORCHARD, JULIET, 'one'],
      [BALCONY, ROMEO, 'two'],
      [ORCHARD, JULIET, 'three'],
      [BALCONY, 'nurse@example.com', 'four'],
      [ORCHARD, JULIET, 'five'],
    ] as const) {
      const [write] = await route(chat(from, to, body));
      ids.push(write?.stanzaId ?? '?');
    }
    kit.take(BALCONY);
    kit.take(ORCHARD);
    return ids;
  }

  it('sends the results in order, forwarded with their delay, then the fin with the page', async () => {
    const ids = await converse();
    const answer = await request(balcony, mamSet('', '', ' queryid="f27"'));
    const { bodies, ids: resultIds, fin } = results(answer);
    expect(bodies).toEqual(['one', 'two', 'three', 'four', 'five']);
    expect(resultIds).toEqual(ids);
    const first = answer[0];
    expect(first?.attrs.to).toBe(BALCONY);
    const result = first?.getChild('result', 'urn:xmpp:mam:2');
    expect(result?.attrs.queryid).toBe('f27');
    const forwarded = result?.getChild('forwarded', 'urn:xmpp:forward:0');
    expect(forwarded?.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    );
    expect(forwarded?.getChild('message')?.attrs).toMatchObject({
      xmlns: 'jabber:client',
      from: ORCHARD,
      to: JULIET,
    });
    const iq = answer.at(-1);
    expect(iq?.attrs).toMatchObject({ type: 'result', id: 'q', to: BALCONY });
    expect(fin?.attrs).toMatchObject({ complete: 'true', queryid: 'f27' });
    expect(fin?.getChild('set')?.toString()).toBe(
      `<set xmlns="http://jabber.org/protocol/rsm"><first>${ids[0]}</first><last>${ids[4]}</last><count>5</count></set>`,
    );
    // Romeo's archive holds what he sent and what he got, not Juliet's message to the nurse.
    expect(results(await request(orchard, mamSet())).bodies).toEqual(['one', 'two', 'three', 'five']);
  });

  it('pages forward and backward with RSM, and filters by with and ids', async () => {
    const ids = await converse();
    const page = async (rsm: string, form = '') => results(await request(balcony, mamSet(form, rsm)));
    const one = await page('<max>2</max>');
    expect([one.bodies, one.fin?.attrs.complete]).toEqual([['one', 'two'], 'false']);
    const two = await page(`<max>2</max><after>${ids[1]}</after>`);
    expect([two.bodies, two.fin?.attrs.complete]).toEqual([['three', 'four'], 'false']);
    const three = await page(`<max>2</max><after>${ids[3]}</after>`);
    expect([three.bodies, three.fin?.attrs.complete]).toEqual([['five'], 'true']);
    const last = await page('<max>2</max><before/>');
    expect([last.bodies, last.fin?.attrs.complete]).toEqual([['four', 'five'], 'false']);
    const earlier = await page(`<max>2</max><before>${ids[1]}</before>`);
    expect([earlier.bodies, earlier.fin?.attrs.complete]).toEqual([['one'], 'true']);
    const withNurse = '<field var="with"><value>nurse@example.com</value></field>';
    expect((await page('', withNurse)).bodies).toEqual(['four']);
    const picked = `<field var="ids"><value>${ids[4]}</value><value>${ids[0]}</value></field>`;
    expect((await page('', picked)).bodies).toEqual(['one', 'five']);
    const between = `<field var="after-id"><value>${ids[0]}</value></field><field var="before-id"><value>${ids[3]}</value></field>`;
    expect((await page('', between)).bodies).toEqual(['two', 'three']);
  });

  it('flips a page on request without changing which messages it holds', async () => {
    await converse();
    const flipped = await request(
      balcony,
      '<iq type="set" id="q"><query xmlns="urn:xmpp:mam:2"><set xmlns="http://jabber.org/protocol/rsm"><max>3</max><before/></set><flip-page/></query></iq>',
    );
    expect(results(flipped).bodies).toEqual(['five', 'four', 'three']);
  });

  it('answers the form, the metadata, and errors for unknown ids, fields and dates', async () => {
    const [form] = await request(balcony, '<iq type="get" id="f"><query xmlns="urn:xmpp:mam:2"/></iq>');
    expect(form?.getChild('query', 'urn:xmpp:mam:2')?.getChild('x', 'jabber:x:data')?.attrs.type).toBe(
      'form',
    );
    const [empty] = await request(balcony, '<iq type="get" id="m"><metadata xmlns="urn:xmpp:mam:2"/></iq>');
    expect(empty?.getChild('metadata')?.children).toEqual([]);
    const ids = await converse();
    const [metadata] = await request(
      balcony,
      '<iq type="get" id="m"><metadata xmlns="urn:xmpp:mam:2"/></iq>',
    );
    const bounds = metadata
      ?.getChild('metadata')
      ?.getChildElements()
      .map((el) => `${el.name} ${String(el.attrs.id)}`);
    expect(bounds).toEqual([`start ${ids[0]}`, `end ${ids[4]}`]);

    const errors: Element[][] = [];
    for (const iq of [
      mamSet('', '<after>nope</after>'),
      mamSet('<field var="ids"><value>nope</value></field>'),
      mamSet('<field var="unknown"><value>x</value></field>'),
      mamSet('<field var="start"><value>noon</value></field>'),
      '<iq type="set" id="q"><prefs xmlns="urn:xmpp:mam:2"/></iq>',
    ]) {
      errors.push(await request(balcony, iq));
    }
    expect(errors.map((stanzas) => stanzas.map((s) => errorOf(s.toString())))).toEqual([
      ['cancel item-not-found'],
      ['cancel item-not-found'],
      ['cancel feature-not-implemented'],
      ['modify bad-request'],
      ['cancel service-unavailable'],
    ]);
  });

  it('answers from the address the request went to, and stops when the session is gone', async () => {
    await converse();
    const addressed = await request(
      balcony,
      `<iq type="set" id="q" to="${JULIET}"><query xmlns="urn:xmpp:mam:2"/></iq>`,
    );
    expect(addressed.map((s) => attr(s, 'from'))).toEqual(Array(6).fill(JULIET));
    kit.vanish(BALCONY);
    expect(await request(balcony, mamSet())).toEqual([]);
  });
});

describe('archive writes in the process of the archive (the embedded shape)', () => {
  /** A store whose archive appends wait until released (each one's release goes to `waiting`). */
  function heldAppends(
    waiting: (() => void)[],
    handed: (entry: ArchiveEntry) => void,
  ): (inner: Store) => Store {
    return (inner) => {
      const archive: ArchiveStore = {
        ...inner.archive,
        append: (_username, entry) => {
          handed(entry);
          return new Promise<void>((resolve) => waiting.push(resolve));
        },
      };
      return { ...inner, archive };
    };
  }

  async function directKit(store?: (inner: Store) => Store): Promise<FeatureKit> {
    const inner = await openSqliteStore(':memory:');
    const opened = await FeatureKit.open(
      {
        bus: new MemoryStanzaBus(),
        registry: new MemorySessionRegistry(),
        delivery: new LocalDelivery(),
        store: store === undefined ? inner : store(inner),
      },
      [blocking, offline, mam, stanzaIds, resultSetManagement],
      { archiveInProcess: true },
    );
    for (const user of ['juliet', 'romeo']) await opened.addUser(user);
    await opened.bind(BALCONY);
    await opened.bind(ORCHARD);
    return opened;
  }

  it('hands both copies straight to the store, none to the archive topic, and a later read finds them', async () => {
    const direct = await directKit();
    try {
      await direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, 'But soft')));
      const [delivered] = direct.take(BALCONY).map((xml) => parseTrusted(xml));
      const id = String(delivered?.getChild('stanza-id', NS_SID)?.attrs.id);
      expect(direct.published.filter((record) => record.topic === TOPIC_ARCHIVE)).toEqual([]);
      // Read after the message was routed, as a MAM request would be: the store takes calls in order.
      const entries = async (username: string) =>
        (await direct.store.archive.query(username, { max: 10 }))?.items.map((e) => [
          e.id,
          e.with,
          e.direction,
        ]);
      expect(await entries('juliet')).toEqual([[id, ROMEO, 'in']]);
      expect(await entries('romeo')).toEqual([[id, JULIET, 'out']]);
    } finally {
      await direct.close();
    }
  });

  it('holds the router back once too many writes wait to be stored, and goes on when they are', async () => {
    let handed = 0;
    const waiting: (() => void)[] = [];
    const direct = await directKit(
      heldAppends(waiting, () => {
        handed += 1;
      }),
    );
    try {
      // Two copies a message: up to the bound, messages go on without waiting for the store.
      for (let i = 0; i < MAX_UNSTORED / 2; i++) {
        await direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, `m${i}`)));
      }
      expect(handed).toBe(MAX_UNSTORED);
      let routed = false;
      const last = direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, 'one too many'))).then(() => {
        routed = true;
      });
      await waitFor(() => handed === MAX_UNSTORED + 2, 5000, 'the last copies to be handed over');
      for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(routed).toBe(false);
      for (const release of waiting.splice(0)) release();
      await last;
      expect(routed).toBe(true);
    } finally {
      for (const release of waiting.splice(0)) release();
      await direct.close();
    }
  });

  it('holds the router back by the size of the writes under way too, for large stanzas', async () => {
    let handedChars = 0;
    const waiting: (() => void)[] = [];
    const direct = await directKit(
      heldAppends(waiting, (entry) => {
        handedChars += entry.stanza.length;
      }),
    );
    const body = 'x'.repeat(200_000);
    try {
      // Two copies of one stanza a message; below the bound in characters, messages go on.
      await direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, body)));
      const copy = handedChars / 2;
      const below = Math.floor(MAX_UNSTORED_CHARS / (2 * copy));
      expect(below).toBeLessThan(MAX_UNSTORED / 2);
      for (let i = 1; i < below; i++) {
        await direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, body)));
      }
      expect(handedChars).toBeLessThanOrEqual(MAX_UNSTORED_CHARS);
      let routed = false;
      const last = direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, body))).then(() => {
        routed = true;
      });
      await waitFor(() => handedChars > MAX_UNSTORED_CHARS, 5000, 'the last copies to be handed over');
      for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(routed).toBe(false);
      for (const release of waiting.splice(0)) release();
      await last;
      expect(routed).toBe(true);
      // Stored writes no longer count: the next message goes on while its own copies wait.
      let next = false;
      void direct.routing.route(parseTrusted(chat(ORCHARD, JULIET, body))).then(() => {
        next = true;
      });
      for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(next).toBe(true);
      expect(waiting).toHaveLength(2);
    } finally {
      for (const release of waiting.splice(0)) release();
      await direct.close();
    }
  });
});
