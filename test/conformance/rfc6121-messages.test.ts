// RFC 6121 §8.5 (with RFC 6120 §10): delivery of messages and IQs to local full and bare JIDs, offline
// storage with XEP-0203 delay stamps, and the errors for unknown, unavailable and remote addresses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestClient, type TestServer } from '../harness/index.ts';
import { attr, bounce, iqRequest, message, messageWithBody, outcome, stanzaError } from './matchers.ts';
import { Cast, goOnline } from './steps.ts';

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

const chat = (to: string, body: string, id?: string): string =>
  `<message to='${to}' type='chat'${id === undefined ? '' : ` id='${id}'`}><body>${body}</body></message>`;

/** Juliet's account with one available session per entry, each with its priority. */
async function julietWith(
  ...priorities: number[]
): Promise<{ username: string; bare: string; sessions: TestClient[] }> {
  const username = await cast.account('juliet');
  const sessions: TestClient[] = [];
  for (const [index, priority] of priorities.entries()) {
    const session = await cast.login(username, { resource: `r${index}-${priority}` });
    await goOnline(session, `<presence><priority>${priority}</priority></presence>`);
    sessions.push(session);
  }
  return { username, bare: cast.jid(username), sessions };
}

describe('messages to a full JID (RFC 6121 §8.5.3)', () => {
  it('reach only that resource, stamped with the sender’s full JID', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(1, 1);
    const balcony = juliet.sessions[0]!;
    const chamber = juliet.sessions[1]!;

    await romeo.send(chat(balcony.jid, 'But soft, what light'));

    await balcony.expect(message(romeo.jid, 'But soft, what light'));
    await chamber.expectNothing(messageWithBody('But soft, what light'));
  });

  it('to a resource that is not connected are handled as if sent to the bare JID', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(1);

    await romeo.send(chat(`${juliet.bare}/long-gone`, 'Art thou there?'));

    await juliet.sessions[0]!.expect(message(romeo.jid, 'Art thou there?'));
  });

  it('to a resource of an account with no session are stored and delivered at the next login', async () => {
    const romeo = await cast.user('romeo');
    const julietName = await cast.account('juliet');

    await romeo.send(chat(`${cast.jid(julietName)}/long-gone`, 'Read this when you wake'));

    const juliet = await cast.login(julietName);
    await goOnline(juliet);
    await juliet.expect(message(romeo.jid, 'Read this when you wake'));
  });

  it('of type groupchat to a user’s bare JID are refused with service-unavailable', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(1);

    await romeo.send(
      `<message to='${juliet.bare}' type='groupchat' id='gc1'><body>All hail</body></message>`,
    );

    const error = await romeo.expect(bounce('message', 'gc1'));
    expect(stanzaError(error).condition).toBe('service-unavailable');
    await juliet.sessions[0]!.expectNothing(messageWithBody('All hail'));
  });
});

describe('messages to a bare JID (RFC 6121 §8.5.2)', () => {
  it('reach the resource with the highest priority only', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(5, 1);

    await romeo.send(chat(juliet.bare, 'To the highest'));

    await juliet.sessions[0]!.expect(message(romeo.jid, 'To the highest'));
    await juliet.sessions[1]!.expectNothing(messageWithBody('To the highest'));
  });

  it('reach every resource that shares the highest priority', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(5, 5);

    await romeo.send(chat(juliet.bare, 'To you both'));

    await juliet.sessions[0]!.expect(message(romeo.jid, 'To you both'));
    await juliet.sessions[1]!.expect(message(romeo.jid, 'To you both'));
  });

  it('never reach a resource with negative priority', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(-1, 0);

    await romeo.send(chat(juliet.bare, 'Not for the shy one'));

    await juliet.sessions[1]!.expect(message(romeo.jid, 'Not for the shy one'));
    await juliet.sessions[0]!.expectNothing(messageWithBody('Not for the shy one'));
  });

  it('are stored when the only available resources have negative priority', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(-5);

    await romeo.send(chat(juliet.bare, 'Kept for later'));
    await juliet.sessions[0]!.expectNothing(messageWithBody('Kept for later'));

    const later = await cast.login(juliet.username);
    await goOnline(later);
    await later.expect(message(romeo.jid, 'Kept for later'));
  });

  it('of type headline reach every resource with non-negative priority', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await julietWith(5, 1, -1);

    await romeo.send(`<message to='${juliet.bare}' type='headline'><body>Extra! Extra!</body></message>`);

    await juliet.sessions[0]!.expect(message(romeo.jid, 'Extra! Extra!'));
    await juliet.sessions[1]!.expect(message(romeo.jid, 'Extra! Extra!'));
    await juliet.sessions[2]!.expectNothing(messageWithBody('Extra! Extra!'));
  });
});

describe('offline messages (RFC 6121 §8.5.2.2, XEP-0160, XEP-0203)', () => {
  it('are delivered at the next login, in order, with a delay stamp from the server', async () => {
    const romeo = await cast.user('romeo');
    const julietName = await cast.account('juliet');
    const before = Date.now();

    for (const line of ['one', 'two', 'three']) await romeo.send(chat(cast.jid(julietName), line));
    // The sender's own IQ round trip orders after its messages, so they have been handled by now.
    expect(
      outcome(await romeo.iq(`<iq type='get' to='${server.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`)),
    ).toBe('result');
    const after = Date.now();

    const juliet = await cast.login(julietName);
    await goOnline(juliet);

    const received = [];
    for (let i = 0; i < 3; i++) received.push(await juliet.expect(message(romeo.jid)));
    expect(received.map((el) => el.getChildText('body'))).toEqual(['one', 'two', 'three']);
    for (const el of received) {
      const delay = el.getChild('delay', 'urn:xmpp:delay');
      expect(delay).toBeDefined();
      expect(attr(delay!, 'from')).toBe(server.domain);
      const stamp = Date.parse(attr(delay!, 'stamp') ?? '');
      expect(stamp).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(stamp).toBeLessThanOrEqual(after);
    }
  });

  it('are stored once: a second login does not get them again', async () => {
    const romeo = await cast.user('romeo');
    const julietName = await cast.account('juliet');
    await romeo.send(chat(cast.jid(julietName), 'Only once'));

    const first = await cast.login(julietName);
    await goOnline(first);
    await first.expect(message(romeo.jid, 'Only once'));
    await first.stop();

    const second = await cast.login(julietName);
    await goOnline(second);
    await second.expectNothing(messageWithBody('Only once'));
  });
});

describe('errors for addresses that cannot take a message', () => {
  it('an unknown account on this server: service-unavailable', async () => {
    const romeo = await cast.user('romeo');
    const nobody = cast.jid('nobody-here');

    await romeo.send(chat(nobody, 'Hello?', 'unknown1'));

    const error = await romeo.expect(bounce('message', 'unknown1'));
    expect(stanzaError(error).condition).toBe('service-unavailable');
  });

  it('another domain, with no route to it: remote-server-not-found', async () => {
    const romeo = await cast.user('romeo');

    await romeo.send(chat('mercutio@verona.invalid', 'Across the border', 'remote1'));

    const error = await romeo.expect(bounce('message', 'remote1'));
    expect(stanzaError(error).condition).toBe('remote-server-not-found');
  });
});

describe('IQs between users (RFC 6121 §8.5.3.1, §8.5.3.2.1)', () => {
  it('an IQ to a full JID reaches that resource, and its result goes back to the requester', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');

    // Juliet's client library answers pings itself.
    const reply = await romeo.iq(`<iq type='get' to='${juliet.jid}'><ping xmlns='urn:xmpp:ping'/></iq>`);

    await juliet.expect(iqRequest(romeo.jid, 'ping', 'urn:xmpp:ping'));
    expect(outcome(reply)).toBe('result');
    expect(attr(reply, 'from')).toBe(juliet.jid);
  });

  it('an IQ to a full JID with no session behind it: service-unavailable', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');
    const absent = `${juliet.bare}/not-connected`;

    const reply = await romeo.iq(`<iq type='get' to='${absent}'><ping xmlns='urn:xmpp:ping'/></iq>`);

    expect(outcome(reply)).toBe('error: service-unavailable');
    expect(attr(reply, 'from')).toBe(absent);
    await juliet.expectNothing(iqRequest(romeo.jid, 'ping', 'urn:xmpp:ping'));
  });
});

describe('ordering (RFC 6120 §10.1)', () => {
  it('delivers 200 messages from one sender in the order they were sent', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');
    const count = 200;

    for (let i = 0; i < count; i++) await romeo.send(chat(juliet.jid, String(i)));

    const bodies: string[] = [];
    for (let i = 0; i < count; i++)
      bodies.push((await juliet.expect(message(romeo.jid))).getChildText('body') ?? '');
    expect(bodies).toEqual(Array.from({ length: count }, (_, i) => String(i)));
  });
});
