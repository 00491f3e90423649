// RFC 6121 §3: presence subscription requests, approvals, cancellations, unsubscribes and pre-approval.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'ltx';
import { RawClient, rawLogin, startTestServer, type TestServer } from '../harness/index.ts';
import { attr, presence, rosterItem, rosterPush } from './matchers.ts';
import { Cast, fetchRoster, goOnline, online, PASSWORD, subscribe } from './steps.ts';

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

describe('requesting and approving a subscription (RFC 6121 §3.1)', () => {
  it('carries subscribe to the contact and subscribed back, with roster pushes and presence on both sides', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');

    // Romeo asks to see Juliet's presence: his roster shows the request as pending.
    await romeo.send(`<presence to='${juliet.bare}' type='subscribe'/>`);
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'none', ask: 'subscribe' }));
    // Juliet receives it from Romeo's bare JID.
    await juliet.expect(presence(romeo.bare, 'subscribe'));

    // Juliet approves.
    await juliet.send(`<presence to='${romeo.bare}' type='subscribed'/>`);
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'from' }));
    await romeo.expect(presence(juliet.bare, 'subscribed'));
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'to', ask: null }));
    // Romeo now has Juliet's current presence.
    await romeo.expect(presence(juliet.jid));
  });

  it('reaches subscription "both" when the contact subscribes back', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);

    await juliet.send(`<presence to='${romeo.bare}' type='subscribe'/>`);
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'from', ask: 'subscribe' }));
    await romeo.expect(presence(juliet.bare, 'subscribe'));
    await romeo.send(`<presence to='${juliet.bare}' type='subscribed'/>`);

    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'both' }));
    await juliet.expect(presence(romeo.bare, 'subscribed'));
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'both', ask: null }));
    await juliet.expect(presence(romeo.jid));
  });

  it('re-delivers a pending request each time the contact comes online, until it is answered', async () => {
    const romeo = await online(cast, 'romeo');
    const julietName = await cast.account('juliet');
    const julietBare = cast.jid(julietName);

    // Juliet is offline when Romeo asks.
    await romeo.send(`<presence to='${julietBare}' type='subscribe'/>`);
    await romeo.expect(rosterPush(romeo.bare, julietBare, { ask: 'subscribe' }));

    const first = await cast.login(julietName);
    await fetchRoster(first);
    await goOnline(first);
    await first.expect(presence(romeo.bare, 'subscribe'));
    await first.stop();

    // She left without answering: the request comes again at her next login.
    const second = await cast.login(julietName);
    await fetchRoster(second);
    await goOnline(second);
    await second.expect(presence(romeo.bare, 'subscribe'));
  });

  it('answers a request from a user who is already subscribed on the contact’s behalf, without showing it', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);

    await romeo.send(`<presence to='${juliet.bare}' type='subscribe'/>`);

    // Juliet's server answers "subscribed" for her (§3.1.3); Romeo's server drops that answer because
    // nothing was pending (§3.1.6, A.3.2), so neither side sees a change.
    await juliet.expectNothing(presence(romeo.bare, 'subscribe'), 500);
    const romeosItem = rosterItem(await fetchRoster(romeo), juliet.bare);
    expect(romeosItem).toBeDefined();
    expect(attr(romeosItem!, 'subscription')).toBe('to');
    expect(attr(romeosItem!, 'ask')).toBeUndefined();
    const julietsItem = rosterItem(await fetchRoster(juliet), romeo.bare);
    expect(julietsItem).toBeDefined();
    expect(attr(julietsItem!, 'subscription')).toBe('from');
  });
});

describe('cancelling and unsubscribing (RFC 6121 §3.2, §3.3)', () => {
  it('the subscriber unsubscribes, then the contact cancels the other direction', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);
    await subscribe(juliet, romeo);

    // Romeo stops receiving Juliet's presence.
    await romeo.send(`<presence to='${juliet.bare}' type='unsubscribe'/>`);
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'from' }));
    await juliet.expect(presence(romeo.bare, 'unsubscribe'));
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'to' }));
    await romeo.expect(presence(juliet.jid, 'unavailable'));

    // Romeo cancels Juliet's subscription to him.
    await romeo.send(`<presence to='${juliet.bare}' type='unsubscribed'/>`);
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'none' }));
    await juliet.expect(presence(romeo.bare, 'unsubscribed'));
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'none' }));
    await juliet.expect(presence(romeo.jid, 'unavailable'));
  });

  it('the contact cancels first, then the subscriber unsubscribes the other direction', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);
    await subscribe(juliet, romeo);

    // Juliet cancels Romeo's subscription to her.
    await juliet.send(`<presence to='${romeo.bare}' type='unsubscribed'/>`);
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'to' }));
    await romeo.expect(presence(juliet.bare, 'unsubscribed'));
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'from' }));
    await romeo.expect(presence(juliet.jid, 'unavailable'));

    // Juliet stops receiving Romeo's presence.
    await juliet.send(`<presence to='${romeo.bare}' type='unsubscribe'/>`);
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'none' }));
    await romeo.expect(presence(juliet.bare, 'unsubscribe'));
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'none' }));
    await juliet.expect(presence(romeo.jid, 'unavailable'));
  });

  it('stops presence from flowing after the subscription is cancelled', async () => {
    const romeo = await online(cast, 'romeo');
    const nurse = await online(cast, 'nurse');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);
    await subscribe(nurse, juliet);
    await juliet.send(`<presence to='${romeo.bare}' type='unsubscribed'/>`);
    await romeo.expect(presence(juliet.jid, 'unavailable'));

    await juliet.send(`<presence><status>at the window</status></presence>`);

    // The nurse, still subscribed, sees the change; Romeo no longer does.
    await nurse.expect((el) => presence(juliet.jid)(el) && el.getChildText('status') === 'at the window');
    await romeo.expectNothing(presence(juliet.jid));
  });
});

describe('pre-approval (RFC 6121 §3.4)', () => {
  it('advertises pre-approval in the stream features after authentication', async () => {
    const username = await cast.account('romeo');
    const raw = await RawClient.connect(server);
    try {
      await rawLogin(raw, server, username, PASSWORD);
      const features = raw.transcript.slice(raw.transcript.lastIndexOf('<stream:features'));
      const parsed = parse(
        features.slice(0, features.indexOf('</stream:features>') + '</stream:features>'.length),
      );
      expect(parsed.getChild('sub', 'urn:xmpp:features:pre-approval')).toBeDefined();
    } finally {
      raw.destroy();
    }
  });

  it('approves a later request at once without bothering the user', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');

    // Juliet approves Romeo before he asks: her roster records it, and nothing goes to Romeo yet.
    await juliet.send(`<presence to='${romeo.bare}' type='subscribed'/>`);
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'none', approved: 'true' }));
    await romeo.expectNothing(presence(juliet.bare, 'subscribed'));

    // Romeo asks, and the server answers for Juliet.
    await romeo.send(`<presence to='${juliet.bare}' type='subscribe'/>`);
    await romeo.expect(presence(juliet.bare, 'subscribed'));
    await romeo.expect(rosterPush(romeo.bare, juliet.bare, { subscription: 'to', ask: null }));
    await romeo.expect(presence(juliet.jid));
    await juliet.expect(rosterPush(juliet.bare, romeo.bare, { subscription: 'from' }));
    await juliet.expectNothing(presence(romeo.bare, 'subscribe'));
  });
});
