// RFC 6120 §8.2.3 and RFC 6121 §8.5.1: every IQ get or set is answered, with an error when nothing handles it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../harness/index.ts';
import { attr, outcome } from './matchers.ts';
import { Cast } from './steps.ts';

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

const unknown = (type: 'get' | 'set', to?: string): string =>
  `<iq type='${type}'${to === undefined ? '' : ` to='${to}'`}><query xmlns='urn:example:no-such-protocol'/></iq>`;

describe('IQs nobody handles', () => {
  it('an unknown get and set to the server: service-unavailable, from the server', async () => {
    const romeo = await cast.user('romeo');

    for (const type of ['get', 'set'] as const) {
      const reply = await romeo.iq(unknown(type, server.domain));
      expect(outcome(reply)).toBe('error: service-unavailable');
      expect(attr(reply, 'from')).toBe(server.domain);
    }
  });

  it('an unknown get and set to the user’s own bare JID: service-unavailable, from that JID', async () => {
    const romeo = await cast.user('romeo');

    for (const type of ['get', 'set'] as const) {
      const reply = await romeo.iq(unknown(type, romeo.bare));
      expect(outcome(reply)).toBe('error: service-unavailable');
      expect(attr(reply, 'from')).toBe(romeo.bare);
    }
  });

  it('an unknown get with no "to" (the user’s own account): service-unavailable', async () => {
    const romeo = await cast.user('romeo');

    expect(outcome(await romeo.iq(unknown('get')))).toBe('error: service-unavailable');
  });

  it('an unknown get to another user’s bare JID, and to an account that does not exist: service-unavailable', async () => {
    const romeo = await cast.user('romeo');
    const juliet = await cast.user('juliet');

    expect(outcome(await romeo.iq(unknown('get', juliet.bare)))).toBe('error: service-unavailable');
    expect(outcome(await romeo.iq(unknown('get', cast.jid('no-such-account'))))).toBe(
      'error: service-unavailable',
    );
  });
});

describe('malformed IQs', () => {
  it('a get with two payload elements: bad-request', async () => {
    const romeo = await cast.user('romeo');

    const reply = await romeo.iq(
      `<iq type='get' to='${server.domain}'><ping xmlns='urn:xmpp:ping'/><time xmlns='urn:xmpp:time'/></iq>`,
    );

    expect(outcome(reply)).toBe('error: bad-request');
  });

  it('a get with no payload: bad-request', async () => {
    const romeo = await cast.user('romeo');

    expect(outcome(await romeo.iq(`<iq type='get' to='${server.domain}'/>`))).toBe('error: bad-request');
  });
});

describe('no IQ is left unanswered', () => {
  it('answers 50 assorted unknown or malformed requests with 50 errors', async () => {
    const romeo = await cast.user('romeo');
    const targets = [server.domain, romeo.bare, undefined];
    const requests = Array.from({ length: 50 }, (_, i) => {
      const type = i % 2 === 0 ? 'get' : 'set';
      const to = targets[i % 3];
      const toAttr = to === undefined ? '' : ` to='${to}'`;
      switch (i % 5) {
        case 0:
          return `<iq type='${type}'${toAttr}><query xmlns='urn:example:unknown-${i}'/></iq>`;
        case 1:
          return `<iq type='${type}'${toAttr}><unknown-${i} xmlns='jabber:iq:roster'/></iq>`;
        case 2:
          return `<iq type='${type}'${toAttr}><a xmlns='urn:example:a'/><b xmlns='urn:example:b'/></iq>`;
        case 3:
          return `<iq type='${type}'${toAttr}/>`;
        default:
          return `<iq type='${type}'${toAttr}><x xmlns='urn:example:x'><deep><er/></deep></x></iq>`;
      }
    });

    const replies = await Promise.all(requests.map((request) => romeo.iq(request, 10_000)));

    expect(replies.filter((reply) => attr(reply, 'type') === 'error')).toHaveLength(50);
  });

  it('never answers an IQ of type result or error', async () => {
    const romeo = await cast.user('romeo');

    await romeo.send(`<iq type='result' id='unsolicited1' to='${server.domain}'/>`);
    await romeo.send(
      `<iq type='error' id='unsolicited2' to='${server.domain}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
    );
    // A round trip after them shows that they have been handled.
    expect(
      outcome(await romeo.iq(`<iq type='get' to='${server.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`)),
    ).toBe('result');

    await romeo.expectNothing(
      (el) => el.name === 'iq' && ['unsolicited1', 'unsolicited2'].includes(attr(el, 'id') ?? ''),
    );
  });
});
