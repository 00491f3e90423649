// RFC 6121 §8.5: the local delivery rules, with two accounts and several resources on a test edge.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { TOPIC_PRESENCE, decodeEnvelope, type HookResult } from '@starling/core';
import { openSqliteStore } from '@starling/store';
import { parseTrusted } from '@starling/xmpp';
import { FeatureKit } from '../test-kit.ts';

const JULIET = 'juliet@example.com';
const ROMEO = 'romeo@example.com';
const ORCHARD = `${ROMEO}/orchard`;
const BALCONY = `${JULIET}/balcony`;
const CHAMBER = `${JULIET}/chamber`;
const GARDEN = `${JULIET}/garden`;
const HIDDEN = `${JULIET}/hidden`;
const ASLEEP = `${JULIET}/asleep`;
const JULIET_ALL = [BALCONY, CHAMBER, GARDEN, HIDDEN, ASLEEP];

const UNAVAILABLE =
  '<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>';

let kit: FeatureKit;

async function route(stanza: string): Promise<void> {
  await kit.routing.route(parseTrusted(stanza));
}

/** Who among Juliet's resources received something, and what Romeo got back. */
function received(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const jid of [...JULIET_ALL, ORCHARD]) {
    const got = kit.take(jid);
    if (got.length > 0) out[jid] = got;
  }
  return out;
}

function presenceRecords(): { key: string; dir: string | undefined; xml: string }[] {
  return kit.published
    .filter((record) => record.topic === TOPIC_PRESENCE)
    .map((record) => {
      const envelope = decodeEnvelope(record.value);
      if (envelope.t !== 'stanza') throw new Error('expected a stanza envelope');
      expect(envelope.sessionId).toBe('');
      expect(envelope.edgeId).toBe('');
      return { key: record.key, dir: envelope.dir, xml: envelope.xml };
    });
}

beforeEach(async () => {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [],
  );
  await kit.addUser('juliet');
  await kit.addUser('romeo');
  await kit.bind(ORCHARD);
});

afterEach(async () => {
  await kit.close();
});

describe('to the bare JID of an account with several resources', () => {
  beforeEach(async () => {
    await kit.bind(BALCONY, { priority: 5 });
    await kit.bind(CHAMBER, { priority: 5 });
    await kit.bind(GARDEN, { priority: 1 });
    await kit.bind(HIDDEN, { priority: -1 });
    await kit.bind(ASLEEP, { priority: 9, available: false });
  });

  it('delivers chat to every resource tied at the highest non-negative priority', async () => {
    const chat = `<message type="chat" from="${ORCHARD}" to="${JULIET}"><body>hi</body></message>`;
    await route(chat);
    expect(received()).toEqual({ [BALCONY]: [chat], [CHAMBER]: [chat] });
  });

  it('delivers normal messages to the single highest-priority resource', async () => {
    await kit.bind(CHAMBER, { priority: 6 });
    const normal = `<message from="${ORCHARD}" to="${JULIET}"><body>hi</body></message>`;
    await route(normal);
    expect(received()).toEqual({ [CHAMBER]: [normal] });
  });

  it('handles an unknown message type as normal', async () => {
    const odd = `<message type="weird" from="${ORCHARD}" to="${JULIET}"><body>hi</body></message>`;
    await route(odd);
    expect(received()).toEqual({ [BALCONY]: [odd], [CHAMBER]: [odd] });
  });

  it('delivers headlines to every available resource with a non-negative priority', async () => {
    const headline = `<message type="headline" from="${ORCHARD}" to="${JULIET}"><body>news</body></message>`;
    await route(headline);
    expect(received()).toEqual({ [BALCONY]: [headline], [CHAMBER]: [headline], [GARDEN]: [headline] });
  });

  it('answers groupchat with service-unavailable and drops errors', async () => {
    await route(
      `<message type="groupchat" id="g1" from="${ORCHARD}" to="${JULIET}"><body>x</body></message>`,
    );
    await route(`<message type="error" from="${ORCHARD}" to="${JULIET}"><body>x</body></message>`);
    expect(received()).toEqual({
      [ORCHARD]: [`<message type="error" id="g1" to="${ORCHARD}" from="${JULIET}">${UNAVAILABLE}</message>`],
    });
  });

  it('delivers available and unavailable presence to every available resource', async () => {
    const available = `<presence from="${ORCHARD}" to="${JULIET}"/>`;
    const unavailable = `<presence type="unavailable" from="${ORCHARD}" to="${JULIET}"/>`;
    await route(available);
    await route(unavailable);
    const both = [available, unavailable];
    expect(received()).toEqual({ [BALCONY]: both, [CHAMBER]: both, [GARDEN]: both, [HIDDEN]: both });
  });

  it('hands subscription presence and probes to the presence role, keyed by the recipient', async () => {
    for (const type of ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe']) {
      await route(`<presence type="${type}" from="${ROMEO}" to="${JULIET}"/>`);
    }
    expect(received()).toEqual({});
    expect(presenceRecords().map((r) => [r.key, r.dir, parseTrusted(r.xml).attrs.type as string])).toEqual([
      [JULIET, 'in', 'subscribe'],
      [JULIET, 'in', 'subscribed'],
      [JULIET, 'in', 'unsubscribe'],
      [JULIET, 'in', 'unsubscribed'],
      [JULIET, 'in', 'probe'],
    ]);
  });

  it('falls back to the next resources once when the chosen one just left', async () => {
    kit.vanish(BALCONY);
    kit.vanish(CHAMBER);
    const chat = `<message type="chat" from="${ORCHARD}" to="${JULIET}"><body>hi</body></message>`;
    await route(chat);
    expect(received()).toEqual({ [GARDEN]: [chat] });
  });

  it('answers IQs to the bare JID with service-unavailable (the router host answers those)', async () => {
    await route(`<iq type="get" id="q1" from="${ORCHARD}" to="${JULIET}"><query xmlns="x"/></iq>`);
    expect(received()).toEqual({
      [ORCHARD]: [`<iq type="error" id="q1" to="${ORCHARD}" from="${JULIET}">${UNAVAILABLE}</iq>`],
    });
  });
});

describe('to a full JID', () => {
  beforeEach(async () => {
    await kit.bind(BALCONY, { priority: 5 });
    await kit.bind(HIDDEN, { priority: -1 });
  });

  it('delivers every kind of stanza to the bound resource, whatever its priority', async () => {
    const stanzas = [
      `<message type="headline" from="${ORCHARD}" to="${HIDDEN}"><body>x</body></message>`,
      `<presence from="${ORCHARD}" to="${HIDDEN}"/>`,
      `<iq type="get" id="v1" from="${ORCHARD}" to="${HIDDEN}"><query xmlns="jabber:iq:version"/></iq>`,
      `<iq type="result" id="v2" from="${ORCHARD}" to="${HIDDEN}"/>`,
    ];
    for (const stanza of stanzas) await route(stanza);
    expect(received()).toEqual({ [HIDDEN]: stanzas });
  });

  it('routes chat and normal for an unbound resource as if sent to the bare JID', async () => {
    const chat = `<message type="chat" from="${ORCHARD}" to="${JULIET}/gone"><body>x</body></message>`;
    const normal = `<message from="${ORCHARD}" to="${JULIET}/gone"><body>x</body></message>`;
    await route(chat);
    await route(normal);
    expect(received()).toEqual({ [BALCONY]: [chat, normal] });
  });

  it('falls back to the bare JID when the bound resource just left', async () => {
    await kit.bind(CHAMBER, { priority: 1 });
    kit.vanish(BALCONY);
    const chat = `<message type="chat" from="${ORCHARD}" to="${BALCONY}"><body>x</body></message>`;
    await route(chat);
    expect(received()).toEqual({ [CHAMBER]: [chat] });
  });

  it('drops headlines, errors and availability presence for an unbound resource', async () => {
    await route(`<message type="headline" from="${ORCHARD}" to="${JULIET}/gone"><body>x</body></message>`);
    await route(`<message type="error" from="${ORCHARD}" to="${JULIET}/gone"/>`);
    await route(`<presence from="${ORCHARD}" to="${JULIET}/gone"/>`);
    await route(`<presence type="unavailable" from="${ORCHARD}" to="${JULIET}/gone"/>`);
    await route(`<iq type="result" id="r" from="${ORCHARD}" to="${JULIET}/gone"/>`);
    expect(received()).toEqual({});
    expect(presenceRecords()).toEqual([]);
  });

  it('answers groupchat and IQ get/set for an unbound resource with service-unavailable', async () => {
    await route(
      `<message type="groupchat" id="m" from="${ORCHARD}" to="${JULIET}/gone"><body>x</body></message>`,
    );
    await route(`<iq type="set" id="i" from="${ORCHARD}" to="${JULIET}/gone"><query xmlns="x"/></iq>`);
    expect(received()).toEqual({
      [ORCHARD]: [
        `<message type="error" id="m" to="${ORCHARD}" from="${JULIET}/gone">${UNAVAILABLE}</message>`,
        `<iq type="error" id="i" to="${ORCHARD}" from="${JULIET}/gone">${UNAVAILABLE}</iq>`,
      ],
    });
  });

  it('hands subscription presence for an unbound resource to the presence role as for the bare JID', async () => {
    await route(`<presence type="subscribe" from="${ROMEO}" to="${JULIET}/gone"/>`);
    expect(presenceRecords().map((r) => [r.key, r.dir])).toEqual([[JULIET, 'in']]);
  });
});

describe('when no resource can take a message', () => {
  it('offers chat, normal and headline to message-undeliverable, and bounces chat when unhandled', async () => {
    const offered: string[] = [];
    let answer: HookResult = undefined;
    kit.host.hooks.on('message-undeliverable', ({ stanza, to }) => {
      offered.push(`${to.toString()} ${stanza.attrs.type as string}`);
      return answer;
    });
    await kit.bind(HIDDEN, { priority: -1 });
    await route(`<message type="chat" id="c" from="${ORCHARD}" to="${JULIET}"><body>x</body></message>`);
    await route(`<message type="headline" from="${ORCHARD}" to="${JULIET}"><body>x</body></message>`);
    answer = 'handled';
    await route(`<message type="normal" from="${ORCHARD}" to="${JULIET}"><body>x</body></message>`);
    expect(offered).toEqual([`${JULIET} chat`, `${JULIET} headline`, `${JULIET} normal`]);
    expect(received()).toEqual({
      [ORCHARD]: [`<message type="error" id="c" to="${ORCHARD}" from="${JULIET}">${UNAVAILABLE}</message>`],
    });
  });
});

describe('to an account that does not exist', () => {
  const NOBODY = 'nobody@example.com';

  it('answers messages and IQs with service-unavailable, drops errors and presence', async () => {
    let offered = 0;
    kit.host.hooks.on('message-undeliverable', () => {
      offered++;
      return 'handled';
    });
    await route(`<message type="chat" id="a" from="${ORCHARD}" to="${NOBODY}"><body>x</body></message>`);
    await route(
      `<message type="headline" id="b" from="${ORCHARD}" to="${NOBODY}/r"><body>x</body></message>`,
    );
    await route(`<message type="error" from="${ORCHARD}" to="${NOBODY}"/>`);
    await route(`<presence type="subscribe" from="${ROMEO}" to="${NOBODY}"/>`);
    await route(`<presence from="${ORCHARD}" to="${NOBODY}"/>`);
    await route(
      `<iq type="get" id="c" from="${ORCHARD}" to="${NOBODY}/r"><ping xmlns="urn:xmpp:ping"/></iq>`,
    );
    expect(offered).toBe(0);
    expect(presenceRecords()).toEqual([]);
    expect(received()).toEqual({
      [ORCHARD]: [
        `<message type="error" id="a" to="${ORCHARD}" from="${NOBODY}">${UNAVAILABLE}</message>`,
        `<iq type="error" id="c" to="${ORCHARD}" from="${NOBODY}/r">${UNAVAILABLE}</iq>`,
      ],
    });
  });
});

describe('addresses that are not a local account', () => {
  it('drops messages and presence to the server itself and to remote domains', async () => {
    await kit.bind(BALCONY);
    await route(`<message type="chat" from="${ORCHARD}" to="example.com"><body>x</body></message>`);
    await route(`<presence type="subscribe" from="${ORCHARD}" to="example.com"/>`);
    await route(`<message type="chat" from="${ORCHARD}" to="juliet@elsewhere.net"><body>x</body></message>`);
    expect(received()).toEqual({});
    expect(presenceRecords()).toEqual([]);
  });
});

describe('the stanza-inbound hook', () => {
  it('sees each stanza for a local account first and can stop it', async () => {
    await kit.bind(BALCONY);
    const seen: string[] = [];
    kit.host.hooks.on('stanza-inbound', ({ from, to, stanza }) => {
      seen.push(`${from.toString()} > ${to.toString()}`);
      return stanza.getChildText('body') === 'stop' ? 'handled' : undefined;
    });
    const pass = `<message type="chat" from="${ORCHARD}" to="${BALCONY}"><body>go</body></message>`;
    await route(pass);
    await route(`<message type="chat" from="${ORCHARD}" to="${BALCONY}"><body>stop</body></message>`);
    expect(seen).toEqual([`${ORCHARD} > ${BALCONY}`, `${ORCHARD} > ${BALCONY}`]);
    expect(received()).toEqual({ [BALCONY]: [pass] });
  });
});

describe('deliver and close', () => {
  it('write to one session, and say when it is gone', async () => {
    const session = await kit.bind(BALCONY);
    expect(await kit.routing.deliver(session, parseTrusted('<message><body>x</body></message>'))).toBe(true);
    await kit.routing.close(session, 'not-authorized');
    kit.vanish(BALCONY);
    expect(await kit.routing.deliver(session, parseTrusted('<message/>'))).toBe(false);
    expect(kit.take(BALCONY)).toEqual(['<message><body>x</body></message>']);
    expect(kit.closed).toEqual([{ jid: BALCONY, condition: 'not-authorized' }]);
  });
});
