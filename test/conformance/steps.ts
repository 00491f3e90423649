// Conversation steps shared by the conformance scenarios: accounts, sessions, and the RFC 6121 moves
// (roster fetch, initial presence, subscription handshake) that many scenarios start from.
import type { Element } from 'ltx';
import { connect, type TestClient, type TestServer, type Transport } from '../harness/index.ts';
import { attr, outcome, presence, rosterPush } from './matchers.ts';

export const PASSWORD = 'wherefore art thou';

export interface SessionOptions {
  readonly resource?: string;
  readonly transport?: Transport;
  /** For accounts not made by `account`; those use PASSWORD. */
  readonly password?: string;
}

/** The people of one test file: fresh accounts per test, and every session they open, closed at the end. */
export class Cast {
  private readonly server: TestServer;
  private readonly sessions: TestClient[] = [];
  private serial = 0;

  constructor(server: TestServer) {
    this.server = server;
  }

  /** Creates an account no other test uses (`romeo` becomes `romeo3`) and returns its username. */
  async account(name: string): Promise<string> {
    const username = `${name}${++this.serial}`;
    await this.server.addUser(username, PASSWORD);
    return username;
  }

  /** Opens one more session of an existing account. */
  async login(username: string, options: SessionOptions = {}): Promise<TestClient> {
    const { password = PASSWORD, ...rest } = options;
    const client = await connect(this.server, { username, password, ...rest });
    this.sessions.push(client);
    return client;
  }

  /** A fresh account with one session. */
  async user(name: string, options: SessionOptions = {}): Promise<TestClient> {
    return this.login(await this.account(name), options);
  }

  /** The bare JID of a username on this server. */
  jid(username: string): string {
    return `${username}@${this.server.domain}`;
  }

  /** Closes every session still open. */
  async leave(): Promise<void> {
    await Promise.allSettled(this.sessions.map((client) => client.stop()));
  }
}

/** Requests the roster, which makes the session an interested resource (RFC 6121 §2.1.6). */
export async function fetchRoster(client: TestClient, ver?: string): Promise<Element> {
  const verAttr = ver === undefined ? '' : ` ver='${ver}'`;
  const reply = await client.iq(`<iq type='get'><query xmlns='jabber:iq:roster'${verAttr}/></iq>`);
  if (outcome(reply) !== 'result') throw new Error(`${client.jid}: roster get failed: ${reply.toString()}`);
  return reply;
}

let syncs = 0;

/**
 * Sends initial presence and returns once the server has handled it: a directed presence to the session's
 * own full JID, sent right after, comes back only then (RFC 6120 §10.1, in-order processing). The echo of
 * initial presence to the sending resource (RFC 6121 §4.2.2) would do too, but it has a test of its own
 * in rfc6121-presence.test.ts and the other scenarios should not all hang on it.
 */
export async function goOnline(client: TestClient, stanza = '<presence/>'): Promise<void> {
  const id = `online-${++syncs}`;
  await client.send(stanza);
  await client.send(`<presence to='${client.jid}' id='${id}'/>`);
  await client.expect((el) => presence(client.jid)(el) && attr(el, 'id') === id);
}

/** An interested, available session of a fresh account. */
export async function online(cast: Cast, name: string, options: SessionOptions = {}): Promise<TestClient> {
  const client = await cast.user(name, options);
  await fetchRoster(client);
  await goOnline(client);
  return client;
}

/**
 * The RFC 6121 §3.1 handshake: `requester` subscribes to `contact`'s presence and `contact` approves. Both
 * must be interested and available; returns once both rosters show the new state and the requester has
 * the contact's presence.
 */
export async function subscribe(requester: TestClient, contact: TestClient): Promise<void> {
  await requester.send(`<presence to='${contact.bare}' type='subscribe'/>`);
  await contact.expect(presence(requester.bare, 'subscribe'));
  await contact.send(`<presence to='${requester.bare}' type='subscribed'/>`);
  await contact.expect(rosterPush(contact.bare, requester.bare, { subscription: ['from', 'both'] }));
  await requester.expect(presence(contact.bare, 'subscribed'));
  await requester.expect(
    rosterPush(requester.bare, contact.bare, { subscription: ['to', 'both'], ask: null }),
  );
  await requester.expect(presence(contact.jid));
}
