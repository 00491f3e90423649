// RFC 6121 §3: subscription conversations between online and offline local users, both sides processed.
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { type TestSession, World } from './test-world.ts';

const JULIET = 'juliet@example.com';
const ROMEO = 'romeo@example.com';

let world: World | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function open(): Promise<World> {
  world = await World.open({
    bus: new MemoryStanzaBus(),
    registry: new MemorySessionRegistry(),
    delivery: new LocalDelivery(),
    store: await openSqliteStore(':memory:'),
  });
  for (const user of ['juliet', 'romeo', 'nurse']) await world.account(user);
  return world;
}

/** Binds a session and sends initial presence; its inbox starts empty. */
async function online(w: World, jid: string, presence = '<presence/>'): Promise<TestSession> {
  const session = await w.connect(jid);
  await w.send(session, presence);
  w.take(jid);
  return session;
}

function sorted(lines: string[]): string[] {
  return [...lines].sort();
}

describe('subscription handshake (§3.1)', () => {
  it('subscribe, approve, and each side sees the state and the presence it is owed', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`, '<presence><show>away</show></presence>');

    await w.send(
      juliet,
      `<presence to='${ROMEO}' type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>J</nick></presence>`,
    );
    expect(w.take(juliet.jid)).toEqual([`push ${ROMEO} none ask`]);
    expect(w.take(romeo.jid)).toEqual([`presence subscribe ${JULIET} -> ${ROMEO} [nick:J]`]);
    expect(await w.backends.store.subscriptionRequests.has('romeo', JULIET)).toBe(true);

    await w.send(romeo, `<presence to='${JULIET}' type='subscribed'/>`);
    expect(w.take(romeo.jid)).toEqual([`push ${JULIET} from`]);
    expect(sorted(w.take(juliet.jid))).toEqual(
      sorted([
        `push ${ROMEO} to`,
        `presence subscribed ${ROMEO} -> ${JULIET}`,
        `presence available ${ROMEO}/orchard -> ${JULIET} [show:away]`,
      ]),
    );
    expect(await w.backends.store.subscriptionRequests.has('romeo', JULIET)).toBe(false);

    // Romeo's presence now follows him to Juliet, and Juliet's does not go to Romeo.
    await w.send(romeo, '<presence><show>chat</show></presence>');
    expect(w.take(juliet.jid)).toEqual([`presence available ${ROMEO}/orchard -> ${JULIET} [show:chat]`]);
    expect(w.take(romeo.jid)).toEqual([
      `presence available ${ROMEO}/orchard -> ${ROMEO}/orchard [show:chat]`,
    ]);
    await w.send(juliet, '<presence><show>dnd</show></presence>');
    expect(w.take(romeo.jid)).toEqual([]);
  });

  it('a repeated request is routed again but not shown twice to the contact', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`);
    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    expect(w.take(juliet.jid)).toEqual([`push ${ROMEO} none ask`]);
    expect(w.take(romeo.jid)).toEqual([`presence subscribe ${JULIET} -> ${ROMEO}`]);
  });

  it('a request to a full JID is addressed to the bare JID and stamped with the bare JID of the user', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`);
    await w.send(juliet, `<presence to='${ROMEO}/orchard' type='subscribe'/>`);
    expect(w.take(romeo.jid)).toEqual([`presence subscribe ${JULIET} -> ${ROMEO}`]);
    expect((await w.backends.store.rosters.getItem('juliet', ROMEO))?.askOut).toBe(true);
  });

  it('a request to an account that already granted it is answered by the server (§3.1.3)', async () => {
    const w = await open();
    await w.setItem('romeo', JULIET, 'from');
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`);
    expect(w.take(juliet.jid)).toEqual([`presence available ${ROMEO}/orchard -> ${JULIET}`]);
    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    expect(w.take(romeo.jid)).toEqual([]);
    expect(sorted(w.take(juliet.jid))).toEqual(
      sorted([
        `push ${ROMEO} none ask`,
        `push ${ROMEO} to`,
        `presence subscribed ${ROMEO} -> ${JULIET}`,
        `presence available ${ROMEO}/orchard -> ${JULIET}`,
      ]),
    );
  });
});

describe('pre-approval (§3.4)', () => {
  it('approving before the request makes the later request succeed without asking the contact', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`);

    await w.send(romeo, `<presence to='${JULIET}' type='subscribed'/>`);
    expect(w.take(romeo.jid)).toEqual([`push ${JULIET} none approved`]);
    expect(w.take(juliet.jid)).toEqual([]);

    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    expect(w.take(romeo.jid)).toEqual([`push ${JULIET} from`]);
    expect(sorted(w.take(juliet.jid))).toEqual(
      sorted([
        `push ${ROMEO} none ask`,
        `push ${ROMEO} to`,
        `presence subscribed ${ROMEO} -> ${JULIET}`,
        `presence available ${ROMEO}/orchard -> ${JULIET}`,
      ]),
    );
    expect(await w.backends.store.rosters.getItem('romeo', JULIET)).toMatchObject({
      subscription: 'from',
      approved: false,
    });
  });

  it('unsubscribed withdraws a pre-approval, so the request waits for a decision again', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`);
    await w.send(romeo, `<presence to='${JULIET}' type='subscribed'/>`);
    await w.send(romeo, `<presence to='${JULIET}' type='unsubscribed'/>`);
    expect(w.take(romeo.jid)).toEqual([`push ${JULIET} none approved`, `push ${JULIET} none`]);
    expect(w.take(juliet.jid)).toEqual([]);

    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    expect(w.take(romeo.jid)).toEqual([`presence subscribe ${JULIET} -> ${ROMEO}`]);
    expect(w.take(juliet.jid)).toEqual([`push ${ROMEO} none ask`]);
  });
});

describe('pending requests (§3.1.3)', () => {
  it('wait for an offline contact and come again at each login until decided', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    expect(w.take(juliet.jid)).toEqual([`push ${ROMEO} none ask`]);

    const orchard = await w.connect(`${ROMEO}/orchard`);
    await w.send(orchard, '<presence/>');
    expect(w.take(orchard.jid)).toEqual([
      `presence available ${ROMEO}/orchard -> ${ROMEO}/orchard`,
      `presence subscribe ${JULIET} -> ${ROMEO}`,
    ]);

    const garden = await w.connect(`${ROMEO}/garden`);
    await w.send(garden, '<presence/>');
    expect(w.take(garden.jid)).toEqual([
      `presence available ${ROMEO}/garden -> ${ROMEO}/garden`,
      `presence available ${ROMEO}/orchard -> ${ROMEO}/garden`,
      `presence subscribe ${JULIET} -> ${ROMEO}`,
    ]);
    expect(w.take(orchard.jid)).toEqual([`presence available ${ROMEO}/garden -> ${ROMEO}/orchard`]);

    // Denial: the request is gone, Juliet learns it and her pending out is cleared.
    await w.send(garden, `<presence to='${JULIET}' type='unsubscribed'/>`);
    expect(sorted(w.take(juliet.jid))).toEqual(
      sorted([`push ${ROMEO} none`, `presence unsubscribed ${ROMEO} -> ${JULIET}`]),
    );
    expect(w.take(garden.jid)).toEqual([]);
    expect(await w.backends.store.subscriptionRequests.list('romeo')).toEqual([]);

    await w.end(orchard);
    const hall = await w.connect(`${ROMEO}/hall`);
    await w.send(hall, '<presence/>');
    expect(w.take(hall.jid)).toEqual([
      `presence available ${ROMEO}/hall -> ${ROMEO}/hall`,
      `presence available ${ROMEO}/garden -> ${ROMEO}/hall`,
    ]);
  });

  it('a request cancelled by the requester is withdrawn from the contact (A.3.2)', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='${ROMEO}' type='subscribe'/>`);
    await w.send(juliet, `<presence to='${ROMEO}' type='unsubscribe'/>`);
    expect(w.take(juliet.jid)).toEqual([`push ${ROMEO} none ask`, `push ${ROMEO} none`]);
    expect(await w.backends.store.subscriptionRequests.has('romeo', JULIET)).toBe(false);
    const orchard = await online(w, `${ROMEO}/orchard`);
    expect(w.inbox(orchard.jid)).toEqual([]);
  });
});

describe('cancelling and unsubscribing (§3.2, §3.3)', () => {
  async function lovers(w: World): Promise<{ juliet: TestSession; romeo: TestSession }> {
    await w.setItem('juliet', ROMEO, 'both');
    await w.setItem('romeo', JULIET, 'both');
    const juliet = await online(w, `${JULIET}/balcony`);
    const romeo = await online(w, `${ROMEO}/orchard`);
    w.take(juliet.jid);
    return { juliet, romeo };
  }

  it('outbound unsubscribed cancels the contact subscription and tells it the user is gone', async () => {
    const w = await open();
    const { juliet, romeo } = await lovers(w);
    await w.send(juliet, `<presence to='${ROMEO}' type='unsubscribed'/>`);
    expect(w.take(juliet.jid)).toEqual([`push ${ROMEO} to`]);
    expect(sorted(w.take(romeo.jid))).toEqual(
      sorted([
        `push ${JULIET} from`,
        `presence unsubscribed ${JULIET} -> ${ROMEO}`,
        `presence unavailable ${JULIET}/balcony -> ${ROMEO}`,
      ]),
    );
    // Juliet's presence no longer reaches Romeo.
    await w.send(juliet, '<presence><show>xa</show></presence>');
    expect(w.take(romeo.jid)).toEqual([]);
  });

  it('inbound unsubscribe ends the subscription and the contact side sends unavailable', async () => {
    const w = await open();
    const { juliet, romeo } = await lovers(w);
    await w.send(romeo, `<presence to='${JULIET}' type='unsubscribe'/>`);
    expect(sorted(w.take(juliet.jid))).toEqual(
      sorted([`push ${ROMEO} to`, `presence unsubscribe ${ROMEO} -> ${JULIET}`]),
    );
    expect(sorted(w.take(romeo.jid))).toEqual(
      sorted([`push ${JULIET} from`, `presence unavailable ${JULIET}/balcony -> ${ROMEO}`]),
    );
    expect(await w.backends.store.rosters.getItem('juliet', ROMEO)).toMatchObject({ subscription: 'to' });
  });
});

describe('subscription stanzas that name no contact', () => {
  it('subscribe to the own JID or to the server is a bad request; other types are ignored', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='${JULIET}' type='subscribe' id='self'/>`);
    await w.send(juliet, `<presence to='example.com' type='subscribe' id='server'/>`);
    await w.send(juliet, `<presence to='${JULIET}' type='subscribed'/>`);
    await w.send(juliet, `<presence to='example.com' type='unsubscribe'/>`);
    await w.send(juliet, `<presence type='subscribe'/>`);
    expect(w.take(juliet.jid)).toEqual([
      `presence error ${JULIET} -> ${JULIET}/balcony [error:bad-request]`,
      `presence error example.com -> ${JULIET}/balcony [error:bad-request]`,
      `presence error - -> ${JULIET}/balcony [error:bad-request]`,
    ]);
    expect((await w.backends.store.rosters.get('juliet')).items).toEqual([]);
  });

  it('a malformed address is jid-malformed', async () => {
    const w = await open();
    const juliet = await online(w, `${JULIET}/balcony`);
    await w.send(juliet, `<presence to='@example.com' type='subscribe'/>`);
    expect(w.take(juliet.jid)).toEqual([
      `presence error @example.com -> ${JULIET}/balcony [error:jid-malformed]`,
    ]);
  });
});
