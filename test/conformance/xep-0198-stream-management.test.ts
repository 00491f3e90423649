// XEP-0198 Stream Management: enabling, acknowledgements both ways, resumption, and what happens to the
// stanzas a client never acknowledged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Element } from '@starling/xmpp';
import {
  connect,
  RawClient,
  rawAuthenticate,
  rawLogin,
  startTestServer,
  type TestServer,
} from '../harness/index.ts';
import { messageWithBody } from './matchers.ts';
import { PASSWORD } from './steps.ts';

const SM = 'urn:xmpp:sm:3';

let server: TestServer;
let users = 0;

beforeAll(async () => {
  // A sweep every second, so an expired stream is closed within the test's time.
  server = await startTestServer({ cluster: { sweepSeconds: 1 } });
});

afterAll(async () => {
  await server.stop();
});

async function newUser(prefix: string): Promise<string> {
  users += 1;
  const name = `${prefix}${users}`;
  await server.addUser(name, PASSWORD);
  return name;
}

/** Logs in on a raw socket and enables stream management; returns the client, its JID and the stream id. */
async function managed(
  username: string,
  enable = `<enable xmlns='${SM}' resume='true'/>`,
): Promise<{ client: RawClient; jid: string; id: string; enabled: string }> {
  const client = await RawClient.connect(server);
  const jid = await rawLogin(client, server, username, PASSWORD);
  client.write(enable);
  const enabled = await client.read(/<enabled[^>]*\/>/);
  const id = /\sid="([^"]+)"/.exec(enabled)?.[1] ?? '';
  return { client, jid, id, enabled };
}

function chat(to: string, body: string, id = body): string {
  return `<message to='${to}' type='chat' id='${id}'><body>${body}</body></message>`;
}

/** Reads `count` messages and returns their bodies, in order. */
async function bodies(client: RawClient, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const text = await client.read('</message>');
    out.push(/<body>([^<]*)<\/body>/.exec(text)?.[1] ?? '');
  }
  return out;
}

describe('enabling (XEP-0198 §3)', () => {
  it('is offered after authentication, and refused before a resource is bound', async () => {
    const client = await RawClient.connect(server);
    const features = await rawAuthenticate(client, server, await newUser('early'), PASSWORD);
    expect(features).toContain(`<sm xmlns="${SM}"/>`);
    client.write(`<enable xmlns='${SM}'/>`);
    const failed = await client.read('</failed>');
    expect(failed).toMatch(
      /<failed xmlns="urn:xmpp:sm:3"><unexpected-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/,
    );
    client.destroy();
  });

  it('answers with a resumable stream id and the resumption window, the lower of the client’s and ours', async () => {
    const { client, enabled, id } = await managed(
      await newUser('enable'),
      `<enable xmlns='${SM}' resume='1' max='60'/>`,
    );
    expect(id.length).toBeGreaterThanOrEqual(16);
    expect(enabled).toContain('resume="true"');
    expect(enabled).toContain('max="60"');
    // A second <enable/> is refused.
    client.write(`<enable xmlns='${SM}'/>`);
    expect(await client.read('</failed>')).toContain('unexpected-request');
    client.write('</stream:stream>');
    await client.closed;
  });

  it('without resume, acknowledges but gives no id', async () => {
    const { client, enabled } = await managed(await newUser('plain'), `<enable xmlns='${SM}'/>`);
    expect(enabled).toBe(`<enabled xmlns="${SM}"/>`);
    client.write('</stream:stream>');
    await client.closed;
  });

  it('is used by an independent client library, which gets its stanzas acknowledged', async () => {
    const user = await newUser('library');
    const alice = await connect(server, { username: user, password: PASSWORD });
    // The library enables it right after binding, and resolves its start a little earlier.
    await expect.poll(() => alice.streamManagement().enabled, { timeout: 5000 }).toBe(true);
    expect(alice.streamManagement().id).not.toBe('');
    await alice.sendCounted(`<message to='${alice.jid}' type='chat'><body>note to self</body></message>`);
    await alice.expect(messageWithBody('note to self'));
    // The library asks for an acknowledgement after sending; our <a/> empties its queue.
    await expect.poll(() => alice.streamManagement().outbound, { timeout: 5000 }).toBe(1);
    expect(alice.streamManagement().inbound).toBeGreaterThanOrEqual(1);
    await alice.stop();
  });
});

describe('acknowledgements (XEP-0198 §4)', () => {
  it('counts the client’s stanzas and answers <r/> with h once they were taken', async () => {
    const { client, jid } = await managed(await newUser('counter'));
    for (let i = 0; i < 3; i++) client.write(`<iq type='get' id='p${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    client.write(`<r xmlns='${SM}'/>`);
    const answer = await client.read(/<a xmlns="urn:xmpp:sm:3" h="\d+"\/>/);
    expect(answer).toContain('h="3"');
    expect(jid).toContain('/');
    client.destroy();
  });

  it('asks the client to acknowledge what it was sent, and takes its answer', async () => {
    const alice = await managed(await newUser('asked'));
    const bob = await managed(await newUser('asker'));
    for (let i = 1; i <= 5; i++) bob.client.write(chat(alice.jid, `m${i}`));
    expect(await bodies(alice.client, 5)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    await alice.client.read(`<r xmlns="${SM}"/>`);
    alice.client.write(`<a xmlns='${SM}' h='5'/>`);
    // Acknowledging more than was sent ends the stream (§4).
    alice.client.write(`<a xmlns='${SM}' h='9'/>`);
    const error = await alice.client.expectStreamError('undefined-condition');
    expect(error).toContain('<handled-count-too-high xmlns="urn:xmpp:sm:3" h="9" send-count="5"/>');
    bob.client.destroy();
  });
});

describe('resumption (XEP-0198 §5)', () => {
  it('resumes a lost connection: the unacknowledged stanzas, then those sent meanwhile, in order', async () => {
    const aliceName = await newUser('resumer');
    const alice = await managed(aliceName);
    const bob = await managed(await newUser('sender'));
    bob.client.write(chat(alice.jid, 'one'));
    bob.client.write(chat(alice.jid, 'two'));
    expect(await bodies(alice.client, 2)).toEqual(['one', 'two']);
    alice.client.write(`<a xmlns='${SM}' h='1'/>`);
    alice.client.write(chat(bob.jid, 'from alice before the loss'));
    alice.client.write(`<r xmlns='${SM}'/>`);
    await alice.client.read('<a xmlns="urn:xmpp:sm:3" h="1"/>');
    alice.client.destroy();
    await alice.client.closed;
    bob.client.write(chat(alice.jid, 'three'));
    bob.client.write(`<r xmlns='${SM}'/>`);
    await bob.client.read(/<a xmlns="urn:xmpp:sm:3" h="3"\/>/);

    const again = await RawClient.connect(server);
    await rawAuthenticate(again, server, aliceName, PASSWORD);
    again.write(`<resume xmlns='${SM}' previd='${alice.id}' h='1'/>`);
    const resumed = await again.read(/<resumed[^>]*\/>/);
    expect(resumed).toContain(`previd="${alice.id}"`);
    expect(resumed).toContain('h="1"');
    expect(await bodies(again, 2)).toEqual(['two', 'three']);
    // The stream goes on: still the same full JID, and numbering continues from the client's h.
    bob.client.write(chat(alice.jid, 'four'));
    expect(await bodies(again, 1)).toEqual(['four']);
    again.write(`<a xmlns='${SM}' h='4'/>`);
    again.write(`<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(await again.read(/<iq [^>]*id="after"[^>]*>/)).toContain(`to="${alice.jid}"`);
    again.write('</stream:stream>');
    await again.closed;
    bob.client.destroy();
  });

  it('closes the old connection when a stream is resumed while it still looks alive', async () => {
    const name = await newUser('twice');
    const first = await managed(name);
    const second = await RawClient.connect(server);
    await rawAuthenticate(second, server, name, PASSWORD);
    second.write(`<resume xmlns='${SM}' previd='${first.id}' h='0'/>`);
    await second.read(/<resumed[^>]*\/>/);
    await first.client.expectStreamError('conflict');
    second.destroy();
  });

  it('refuses an unknown stream id, another user’s stream, and a resume after binding', async () => {
    const owner = await managed(await newUser('owner'));
    const thief = await RawClient.connect(server);
    await rawAuthenticate(thief, server, await newUser('thief'), PASSWORD);
    thief.write(`<resume xmlns='${SM}' previd='${owner.id}' h='0'/>`);
    expect(await thief.read('</failed>')).toContain('<item-not-found');
    thief.write(`<resume xmlns='${SM}' previd='no-such-stream' h='0'/>`);
    expect(await thief.read('</failed>')).toContain('<item-not-found');
    owner.client.write(`<resume xmlns='${SM}' previd='${owner.id}' h='0'/>`);
    expect(await owner.client.read('</failed>')).toContain('<unexpected-request');
    // The owner's stream was not disturbed.
    owner.client.write(`<r xmlns='${SM}'/>`);
    await owner.client.read('<a xmlns="urn:xmpp:sm:3"');
    thief.destroy();
    owner.client.destroy();
  });

  it('routes what a cleanly closed stream never acknowledged to offline storage', async () => {
    const aliceName = await newUser('closer');
    const alice = await managed(aliceName);
    const bob = await managed(await newUser('writer'));
    bob.client.write(chat(alice.jid, 'unread'));
    expect(await bodies(alice.client, 1)).toEqual(['unread']);
    alice.client.write('</stream:stream>');
    await alice.client.closed;

    const back = await connect(server, { username: aliceName, password: PASSWORD });
    await back.send('<presence/>');
    const stored = await back.expect(messageWithBody('unread'));
    expect(stored.getChild('delay', 'urn:xmpp:delay')).toBeDefined();
    await back.stop();
    bob.client.destroy();
  });
});

describe('a stream nobody resumes', () => {
  let short: TestServer;
  beforeAll(async () => {
    short = await startTestServer({ streamManagement: { resumeSeconds: 1 }, cluster: { sweepSeconds: 1 } });
  });
  afterAll(async () => {
    await short.stop();
  });

  it('ends after its window, and its unacknowledged messages are routed again', async () => {
    await short.addUser('juliet', PASSWORD);
    await short.addUser('romeo', PASSWORD);
    const juliet = await RawClient.connect(short);
    const julietJid = await rawLogin(juliet, short, 'juliet', PASSWORD);
    juliet.write(`<enable xmlns='${SM}' resume='true'/>`);
    const id = /\sid="([^"]+)"/.exec(await juliet.read(/<enabled[^>]*\/>/))?.[1] ?? '';
    const romeo = await connect(short, { username: 'romeo', password: PASSWORD });
    await romeo.send(`<message to='${julietJid}' type='chat'><body>wherefore</body></message>`);
    expect(await bodies(juliet, 1)).toEqual(['wherefore']);
    juliet.destroy();
    await juliet.closed;

    // Once the window passed and a sweep closed the stream, the message is routed again: to offline
    // storage, or to a new available session of hers. Until then, new sessions find nothing.
    let stored: Element | undefined;
    for (let attempt = 0; attempt < 20 && stored === undefined; attempt++) {
      const back = await connect(short, { username: 'juliet', password: PASSWORD, resource: `r${attempt}` });
      await back.send('<presence/>');
      stored = await back.expect(messageWithBody('wherefore'), 500).catch(() => undefined);
      await back.stop();
    }
    expect(stored).toBeDefined();
    const late = await RawClient.connect(short);
    await rawAuthenticate(late, short, 'juliet', PASSWORD);
    late.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    expect(await late.read('</failed>')).toContain('<item-not-found');
    late.destroy();
    await romeo.stop();
  });
});
