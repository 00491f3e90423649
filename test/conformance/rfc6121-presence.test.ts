// RFC 6121 §4: presence broadcast, probes, the user's own resources, unavailable presence and directed presence.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../harness/index.ts';
import { attr, bounce, presence, stanzaError } from './matchers.ts';
import { Cast, fetchRoster, goOnline, online, subscribe } from './steps.ts';

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

describe('initial presence (RFC 6121 §4.2)', () => {
  it('is broadcast to contacts subscribed to the user (from, both) and to nobody else', async () => {
    const julietName = await cast.account('juliet');
    const setup = await cast.login(julietName);
    await fetchRoster(setup);
    await goOnline(setup);
    const romeo = await online(cast, 'romeo'); // subscribed to Juliet: "from" in her roster
    const nurse = await online(cast, 'nurse'); // mutual: "both"
    const mercutio = await online(cast, 'mercutio'); // Juliet is subscribed to him, not he to her: "to"
    const benvolio = await online(cast, 'benvolio'); // asked, never approved: "none" with a pending request
    await subscribe(romeo, setup);
    await subscribe(nurse, setup);
    await subscribe(setup, nurse);
    await subscribe(setup, mercutio);
    await benvolio.send(`<presence to='${setup.bare}' type='subscribe'/>`);
    await setup.expect(presence(benvolio.bare, 'subscribe'));
    await setup.stop();
    await romeo.expect(presence(setup.jid, 'unavailable'));
    await nurse.expect(presence(setup.jid, 'unavailable'));

    // Juliet logs in again and becomes available.
    const juliet = await cast.login(julietName);
    await goOnline(juliet, `<presence><show>chat</show><status>at the window</status></presence>`);

    for (const subscriber of [romeo, nurse]) {
      const broadcast = await subscriber.expect(presence(juliet.jid));
      expect(broadcast.getChildText('status')).toBe('at the window');
      expect(broadcast.getChildText('show')).toBe('chat');
    }
    await mercutio.expectNothing(presence(juliet.jid));
    await benvolio.expectNothing(presence(juliet.jid));
  });

  it('makes the server probe the user’s contacts, so the newcomer gets their current presence', async () => {
    const julietName = await cast.account('juliet');
    const setup = await cast.login(julietName);
    await fetchRoster(setup);
    await goOnline(setup);
    const nurse = await cast.user('nurse'); // both
    await fetchRoster(nurse);
    await goOnline(nurse, `<presence><status>in the kitchen</status></presence>`);
    const mercutio = await cast.user('mercutio'); // Juliet subscribed to him: "to"
    await fetchRoster(mercutio);
    await goOnline(mercutio, `<presence><show>away</show></presence>`);
    const romeo = await online(cast, 'romeo'); // subscribed to Juliet only: "from"
    await subscribe(setup, nurse);
    await subscribe(nurse, setup);
    await subscribe(setup, mercutio);
    await subscribe(romeo, setup);
    await setup.stop();

    const juliet = await cast.login(julietName);
    await fetchRoster(juliet);
    await goOnline(juliet);

    const fromNurse = await juliet.expect(presence(nurse.jid));
    expect(fromNurse.getChildText('status')).toBe('in the kitchen');
    const fromMercutio = await juliet.expect(presence(mercutio.jid));
    expect(fromMercutio.getChildText('show')).toBe('away');
    await juliet.expectNothing(presence(romeo.jid));
    // Probes are answered by the server; a client never sees one.
    await juliet.expectNothing((el) => el.name === 'presence' && attr(el, 'type') === 'probe');
  });

  it('reaches the user’s other available resources, and is echoed to the sending one', async () => {
    const username = await cast.account('romeo');
    const balcony = await cast.login(username, { resource: 'balcony' });
    const garden = await cast.login(username, { resource: 'garden' });
    await goOnline(balcony);

    await garden.send(`<presence><status>under the window</status></presence>`);

    const sibling = await balcony.expect(presence(garden.jid));
    expect(sibling.getChildText('status')).toBe('under the window');
    const echo = await garden.expect(presence(garden.jid));
    expect(echo.getChildText('status')).toBe('under the window');
  });

  it('is refused with bad-request when the priority is outside -128..127, and not broadcast', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    await subscribe(romeo, juliet);

    await juliet.send(`<presence id='prio1'><priority>200</priority></presence>`);

    const error = await juliet.expect(bounce('presence', 'prio1'));
    expect(stanzaError(error).condition).toBe('bad-request');
    await romeo.expectNothing((el) => el.name === 'presence' && el.getChildText('priority') === '200');
  });
});

describe('unavailable presence (RFC 6121 §4.5)', () => {
  it('is broadcast when the user sends it, with its status, to subscribers only', async () => {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    const mercutio = await online(cast, 'mercutio');
    await subscribe(romeo, juliet);

    await juliet.send(`<presence type='unavailable'><status>gone to bed</status></presence>`);

    const goodbye = await romeo.expect(presence(juliet.jid, 'unavailable'));
    expect(goodbye.getChildText('status')).toBe('gone to bed');
    await mercutio.expectNothing(presence(juliet.jid, 'unavailable'));
  });

  it('is broadcast on the user’s behalf when the session ends, to contacts and to the user’s other resources', async () => {
    const romeo = await online(cast, 'romeo');
    const username = await cast.account('juliet');
    const balcony = await cast.login(username, { resource: 'balcony' });
    const chamber = await cast.login(username, { resource: 'chamber' });
    await fetchRoster(balcony);
    await goOnline(balcony);
    await goOnline(chamber);
    await balcony.expect(presence(chamber.jid));
    await subscribe(romeo, balcony);

    await balcony.stop();

    await romeo.expect(presence(balcony.jid, 'unavailable'));
    await chamber.expect(presence(balcony.jid, 'unavailable'));
  });
});

describe('directed presence (RFC 6121 §4.6)', () => {
  it('reaches a non-contact, who is told "unavailable" when the sender’s session ends', async () => {
    const romeo = await online(cast, 'romeo');
    const tybalt = await online(cast, 'tybalt');

    await romeo.send(`<presence to='${tybalt.jid}'><status>a word with you</status></presence>`);
    const directed = await tybalt.expect(presence(romeo.jid));
    expect(directed.getChildText('status')).toBe('a word with you');

    await romeo.stop();

    await tybalt.expect(presence(romeo.jid, 'unavailable'));
  });

  it('is followed by unavailable when the sender broadcasts unavailable', async () => {
    const romeo = await online(cast, 'romeo');
    const tybalt = await online(cast, 'tybalt');
    await romeo.send(`<presence to='${tybalt.jid}'/>`);
    await tybalt.expect(presence(romeo.jid));

    await romeo.send(`<presence type='unavailable'/>`);

    await tybalt.expect(presence(romeo.jid, 'unavailable'));
  });
});
