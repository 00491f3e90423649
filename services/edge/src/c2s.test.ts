// RFC 6120 over TCP: STARTTLS, SASL, binding, stanza checks and session ends against a running edge.
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  hibernatedConnections,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
  type SessionEndEnvelope,
  type StanzaEnvelope,
} from '@starling/core';
import { waitFor } from '@starling/ports/contracts';
import {
  NS_BIND,
  NS_CAPS,
  NS_PRE_APPROVAL,
  NS_ROSTER_VER,
  NS_SASL,
  NS_SESSION,
  NS_STANZAS,
  NS_TLS,
  parseTrusted,
  type Element,
} from '@starling/xmpp';
import { MAX_FAILURES_PER_STREAM } from './sasl-negotiation.ts';
import { TestClient } from './test-client.ts';
import {
  authenticateAndBind,
  DOMAIN,
  loggedIn,
  openStream,
  PASSWORD,
  scramLogin,
  startTestEdge,
  startTls,
  type TestEdge,
} from './test-edge.ts';

let running: TestEdge | undefined;
const clients: TestClient[] = [];

async function edge(settings: Record<string, unknown> = {}): Promise<TestEdge> {
  running = await startTestEdge(settings);
  return running;
}

async function tcp(target: TestEdge): Promise<TestClient> {
  const client = await TestClient.tcp(target.edge.ports.c2s);
  clients.push(client);
  return client;
}

afterEach(async () => {
  await running?.close();
  running = undefined;
  for (const client of clients.splice(0)) client.close();
});

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const plainAuth = (authzid: string, user: string, password: string): string =>
  `<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${b64(`${authzid}\0${user}\0${password}`)}</auth>`;

function mechanisms(features: Element): string[] {
  return (
    features
      .getChild('mechanisms', NS_SASL)
      ?.getChildren('mechanism')
      .map((m) => m.getText()) ?? []
  );
}

function condition(el: Element): string | undefined {
  return el.getChildElements().find((child) => child.name !== 'text')?.name;
}

function stanzaCondition(el: Element): string | undefined {
  return el
    .getChild('error')
    ?.getChildElements()
    .find((child) => child.attrs.xmlns === NS_STANZAS && child.name !== 'text')?.name;
}

/** Sends a ping and expects it to be the next record on the bus: nothing sent before it was published. */
async function expectNextPublished(target: TestEdge, client: TestClient, id: string): Promise<void> {
  client.send(`<iq type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const envelope = (await target.next(TOPIC_STANZAS)) as StanzaEnvelope;
  expect(parseTrusted(envelope.xml).attrs.id).toBe(id);
}

async function login(target: TestEdge, username?: string, resource?: string) {
  const session = await loggedIn(target, username, resource);
  clients.push(session.client);
  return session;
}

describe('c2s with STARTTLS', () => {
  it('walks header, STARTTLS, SCRAM-SHA-256 and bind, then publishes a stamped message', async () => {
    const target = await edge();
    const client = await tcp(target);
    client.open(DOMAIN);
    const header = await client.header();
    expect(header).toMatchObject({ from: DOMAIN, version: '1.0', 'xml:lang': 'en' });
    expect(header.id?.length).toBeGreaterThanOrEqual(16);
    const plainFeatures = await client.element();
    expect(plainFeatures.getChild('starttls', NS_TLS)?.getChild('required')).toBeDefined();
    expect(plainFeatures.getChild('mechanisms', NS_SASL)).toBeUndefined();

    client.send(`<starttls xmlns='${NS_TLS}'/>`);
    expect((await client.element()).is('proceed', NS_TLS)).toBe(true);
    await client.startTls();
    const tlsFeatures = await openStream(client);
    expect(tlsFeatures.getChild('starttls', NS_TLS)).toBeUndefined();
    expect(mechanisms(tlsFeatures)).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
    expect(tlsFeatures.getChild('c', NS_CAPS)?.attrs).toMatchObject({ hash: 'sha-1' });

    const success = await scramLogin(client, 'juliet', PASSWORD);
    expect(success.is('success', NS_SASL)).toBe(true);
    expect(Buffer.from(success.getText(), 'base64').toString()).toMatch(/^v=/);
    client.restart();
    const boundFeatures = await openStream(client);
    expect(boundFeatures.getChild('bind', NS_BIND)).toBeDefined();
    expect(boundFeatures.getChild('session', NS_SESSION)?.getChild('optional')).toBeDefined();
    expect(boundFeatures.getChild('ver', NS_ROSTER_VER)).toBeDefined();
    expect(boundFeatures.getChild('sub', NS_PRE_APPROVAL)).toBeDefined();

    client.send(`<iq type='set' id='b'><bind xmlns='${NS_BIND}'><resource>balcony</resource></bind></iq>`);
    const bound = await client.element();
    expect(bound.attrs).toMatchObject({ type: 'result', id: 'b' });
    expect(bound.getChild('bind', NS_BIND)?.getChildText('jid')).toBe('juliet@localhost/balcony');
    expect(target.edge.sessionCount()).toBe(1);
    expect((await target.registry.get('juliet@localhost/balcony'))?.edgeId).toBe('edge-test');

    client.send(
      `<message to='romeo@localhost' type='chat' id='m1'><body>Wherefore art thou?</body></message>`,
    );
    const envelope = (await target.next(TOPIC_STANZAS)) as StanzaEnvelope;
    expect(envelope).toMatchObject({ t: 'stanza', from: 'juliet@localhost/balcony', edgeId: 'edge-test' });
    const message = parseTrusted(envelope.xml);
    expect(message.attrs).toMatchObject({
      from: 'juliet@localhost/balcony',
      to: 'romeo@localhost',
      id: 'm1',
    });
    expect(message.getChildText('body')).toBe('Wherefore art thou?');
  });

  it('publishes stanza envelopes in JSON, or compactly where every reader is of this release', async () => {
    for (const compactEnvelopes of [false, true]) {
      running = await startTestEdge({}, { compactEnvelopes });
      const { client } = await loggedIn(running);
      clients.push(client);
      client.send(`<message to='romeo@localhost' type='chat' id='m1'><body>Hist!</body></message>`);
      const envelope = (await running.next(TOPIC_STANZAS)) as StanzaEnvelope;
      expect(envelope).toMatchObject({ t: 'stanza', from: 'juliet@localhost/balcony', edgeId: 'edge-test' });
      expect(parseTrusted(envelope.xml).getChildText('body')).toBe('Hist!');
      const value = running.bus.values.find((v) => v.includes('Hist!'));
      expect(value?.slice(0, 4)).toBe(compactEnvelopes ? 'st1\t' : '{"t"');
      await running.close();
      running = undefined;
    }
  });

  it('discards bytes pipelined after <starttls/>', async () => {
    const target = await edge();
    const client = await tcp(target);
    await openStream(client);
    client.send(`<starttls xmlns='${NS_TLS}'/>${plainAuth('', 'juliet', PASSWORD)}<presence/>`);
    expect((await client.element()).is('proceed', NS_TLS)).toBe(true);
    await client.startTls();
    const features = await openStream(client);
    expect(mechanisms(features)).toContain('SCRAM-SHA-256');
    expect(await authenticateAndBind(client)).toBe('juliet@localhost/balcony');
    expect(target.pending(TOPIC_PRESENCE)).toEqual([]);
  });

  it('closes a stream that sends a stanza before authenticating with not-authorized', async () => {
    const target = await edge({ tls: { required: false } });
    const client = await tcp(target);
    await openStream(client);
    client.send(`<message to='romeo@localhost'><body>hi</body></message>`);
    expect(await client.streamError()).toBe('not-authorized');
  });

  it('answers anything but STARTTLS with policy-violation while TLS is required', async () => {
    const target = await edge();
    const client = await tcp(target);
    await openStream(client);
    client.send(`<iq type='get' id='r'><query xmlns='jabber:iq:register'/></iq>`);
    expect(await client.streamError()).toBe('policy-violation');
  });

  it('refuses SASL before TLS with encryption-required when TLS is required', async () => {
    const target = await edge();
    const client = await tcp(target);
    await openStream(client);
    client.send(plainAuth('', 'juliet', PASSWORD));
    expect(condition(await client.element())).toBe('encryption-required');
  });
});

describe('SASL on the wire', () => {
  it('offers PLAIN only over TLS and refuses it without', async () => {
    const target = await edge({ tls: { required: false } });
    const client = await tcp(target);
    const features = await openStream(client);
    expect(features.getChild('starttls', NS_TLS)?.getChild('required')).toBeUndefined();
    expect(mechanisms(features)).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1']);
    client.send(plainAuth('', 'juliet', PASSWORD));
    expect(condition(await client.element())).toBe('encryption-required');
  });

  it('accepts PLAIN over TLS, checking the authzid', async () => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    client.send(plainAuth('romeo@localhost', 'juliet', PASSWORD));
    expect(condition(await client.element())).toBe('invalid-authzid');
    client.send(plainAuth('juliet@localhost', 'juliet', PASSWORD));
    expect((await client.element()).is('success', NS_SASL)).toBe(true);
  });

  it('lets a client retry after a failure', async () => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    const failure = await scramLogin(client, 'juliet', 'wrong');
    expect(failure.is('failure', NS_SASL)).toBe(true);
    expect(condition(failure)).toBe('not-authorized');
    expect((await scramLogin(client, 'juliet', PASSWORD)).is('success', NS_SASL)).toBe(true);
  });

  it('fails an unknown user only at the end of a full exchange', async () => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    expect(condition(await scramLogin(client, 'nobody', PASSWORD))).toBe('not-authorized');
  });

  it.each([
    ['invalid-mechanism', `<auth xmlns='${NS_SASL}' mechanism='DIGEST-MD5'/>`],
    ['incorrect-encoding', `<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-256'>not base64!</auth>`],
    [
      'malformed-request',
      `<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-256'>${b64('p=tls-unique,,n=a,r=b')}</auth>`,
    ],
    ['malformed-request', `<response xmlns='${NS_SASL}'>${b64('x')}</response>`],
  ])('answers %s', async (expected, auth) => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    client.send(auth);
    expect(condition(await client.element())).toBe(expected);
  });

  it('answers mechanism-too-weak for a weaker mechanism than policy allows', async () => {
    const target = await edge({ auth: { mechanisms: ['SCRAM-SHA-256'] } });
    const client = await tcp(target);
    const features = await startTls(client);
    expect(mechanisms(features)).toEqual(['SCRAM-SHA-256']);
    client.send(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-1'>${b64('n,,n=juliet,r=abc')}</auth>`);
    expect(condition(await client.element())).toBe('mechanism-too-weak');
  });

  it('answers <abort/> with aborted', async () => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    client.send(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-256'>${b64('n,,n=juliet,r=abc')}</auth>`);
    expect((await client.element()).name).toBe('challenge');
    client.send(`<abort xmlns='${NS_SASL}'/>`);
    expect(condition(await client.element())).toBe('aborted');
  });

  it('closes the stream with policy-violation after too many failures', async () => {
    const target = await edge({ auth: { failuresBeforeDelay: 100, failuresBeforeBlock: 100 } });
    const client = await tcp(target);
    await startTls(client);
    for (let i = 0; i < MAX_FAILURES_PER_STREAM; i++) {
      expect(condition(await scramLogin(client, 'juliet', 'wrong'))).toBe('not-authorized');
    }
    expect(await client.streamError()).toBe('policy-violation');
  });

  it('blocks an address after repeated failures, even with the right password', async () => {
    const target = await edge({
      auth: { failuresBeforeDelay: 1, failureDelayMs: 0, failuresBeforeBlock: 2 },
    });
    const client = await tcp(target);
    await startTls(client);
    expect(condition(await scramLogin(client, 'juliet', 'wrong'))).toBe('not-authorized');
    expect(condition(await scramLogin(client, 'juliet', 'wrong'))).toBe('not-authorized');
    const blocked = await scramLogin(client, 'juliet', PASSWORD);
    expect(condition(blocked)).toBe('temporary-auth-failure');
    expect(blocked.getChildText('text')).toMatch(/try again/);
    const other = await tcp(target);
    await startTls(other);
    expect(condition(await scramLogin(other, 'juliet', PASSWORD))).toBe('temporary-auth-failure');
  });
});

describe('stream header', () => {
  it('answers an unknown domain with host-unknown, after its own header', async () => {
    const target = await edge();
    const client = await tcp(target);
    client.open('elsewhere.example');
    expect((await client.header()).from).toBe(DOMAIN);
    expect(await client.streamError()).toBe('host-unknown');
  });

  it('answers a missing or old version with unsupported-version', async () => {
    const target = await edge();
    const client = await tcp(target);
    client.open(DOMAIN, "version='0.9'");
    await client.header();
    expect(await client.streamError()).toBe('unsupported-version');
  });

  it('answers a closing tag with its own and closes the connection', async () => {
    const target = await edge();
    const client = await tcp(target);
    await openStream(client);
    client.send('  \n</stream:stream>');
    await client.streamEnd();
    await client.closed;
  });

  it('enforces the pre-authentication size limit', async () => {
    const target = await edge({ limits: { preAuthStanzaBytes: 1024 } });
    const client = await tcp(target);
    await openStream(client);
    client.send(`<iq type='get' id='x'><query xmlns='jabber:iq:register'>${'a'.repeat(2048)}</query></iq>`);
    expect(await client.streamError()).toBe('policy-violation');
  });

  it('closes an idle unauthenticated stream with connection-timeout', async () => {
    const target = await edge({ limits: { authTimeoutSeconds: 1 } });
    const client = await tcp(target);
    await openStream(client);
    expect(await client.streamError()).toBe('connection-timeout');
  });

  it('refuses connections past the per-address limit with policy-violation', async () => {
    const target = await edge({ limits: { connectionsPerAddress: 1 } });
    const first = await tcp(target);
    await openStream(first);
    const second = await tcp(target);
    await second.header();
    expect(await second.streamError()).toBe('policy-violation');
  });
});

describe('direct TLS', () => {
  it('serves a TLS stream without STARTTLS, with PLAIN offered', async () => {
    const target = await edge();
    const client = await TestClient.directTls(target.edge.ports.directTls);
    clients.push(client);
    const features = await openStream(client);
    expect(features.getChild('starttls', NS_TLS)).toBeUndefined();
    expect(mechanisms(features)).toContain('PLAIN');
    expect(await authenticateAndBind(client, 'romeo', 'orchard')).toBe('romeo@localhost/orchard');
  });
});

describe('draining', () => {
  it('does not wait for a TLS handshake that never comes', async () => {
    const target = await edge();
    const silent = connect(target.edge.ports.directTls, '127.0.0.1');
    await once(silent, 'connect');
    const closed = once(silent, 'close');
    await target.edge.close();
    await closed;
  });
});

describe('registration', () => {
  it('registers an account over TLS that can then log in', async () => {
    const target = await edge({ registration: 'open' });
    const client = await tcp(target);
    const features = await startTls(client);
    expect(features.getChild('register', 'http://jabber.org/features/iq-register')).toBeDefined();
    client.send(`<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>`);
    const form = await client.element();
    expect(form.getChild('query', 'jabber:iq:register')?.getChild('password')).toBeDefined();
    client.send(
      `<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>Mercutio</username><password>plague</password></query></iq>`,
    );
    expect((await client.element()).attrs).toMatchObject({ type: 'result', id: 's' });
    expect((await target.store.accounts.get('mercutio'))?.username).toBe('mercutio');
    client.send(
      `<iq type='set' id='t'><query xmlns='jabber:iq:register'><username>juliet</username><password>x</password></query></iq>`,
    );
    expect(stanzaCondition(await client.element())).toBe('conflict');
    client.send(
      `<iq type='set' id='u'><query xmlns='jabber:iq:register'><username>tybalt</username><password/></query></iq>`,
    );
    expect(stanzaCondition(await client.element())).toBe('not-acceptable');
    expect((await scramLogin(client, 'mercutio', 'plague')).is('success', NS_SASL)).toBe(true);
  });

  it('answers service-unavailable when registration is closed', async () => {
    const target = await edge();
    const client = await tcp(target);
    const features = await startTls(client);
    expect(features.getChild('register', 'http://jabber.org/features/iq-register')).toBeUndefined();
    client.send(`<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>`);
    expect(stanzaCondition(await client.element())).toBe('service-unavailable');
  });
});

describe('after authentication', () => {
  it('refuses stanzas before bind with not-authorized but answers the legacy session', async () => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    await scramLogin(client, 'juliet', PASSWORD);
    client.restart();
    await openStream(client);
    client.send(`<iq type='set' id='s'><session xmlns='${NS_SESSION}'/></iq>`);
    expect((await client.element()).attrs).toMatchObject({ type: 'result', id: 's' });
    client.send(`<message to='romeo@localhost'><body>x</body></message>`);
    expect(await client.streamError()).toBe('not-authorized');
  });

  it('generates a resource when the client asks for none, and refuses a second bind', async () => {
    const target = await edge();
    const client = await tcp(target);
    await startTls(client);
    await scramLogin(client, 'juliet', PASSWORD);
    client.restart();
    await openStream(client);
    client.send(`<iq type='set' id='b'><bind xmlns='${NS_BIND}'/></iq>`);
    const jid = (await client.element()).getChild('bind', NS_BIND)?.getChildText('jid');
    expect(jid).toMatch(/^juliet@localhost\/.+/);
    client.send(`<iq type='set' id='b2'><bind xmlns='${NS_BIND}'><resource>again</resource></bind></iq>`);
    const second = await client.element();
    expect(second.attrs).toMatchObject({ type: 'error', id: 'b2' });
    expect(stanzaCondition(second)).toBe('not-allowed');
  });

  it('ignores whitespace keepalives between stanzas', async () => {
    const target = await edge();
    const { client } = await login(target);
    client.send(' ');
    client.send('\n\t ');
    await expectNextPublished(target, client, 'after-keepalive');
  });

  it('lets an idle stream’s parser sleep, and goes on when the client sends again', async () => {
    const target = await edge({ limits: { hibernateSeconds: 1 } });
    const { client } = await login(target);
    await expectNextPublished(target, client, 'before-sleep');
    const sleeping = async (): Promise<number> => (await hibernatedConnections.get()).values[0]?.value ?? 0;
    await waitFor(async () => (await sleeping()) === 1, 5_000, 'the idle stream to hibernate');
    await expectNextPublished(target, client, 'after-sleep');
  });

  it('publishes presence on the presence topic', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    client.send(`<presence><show>away</show></presence>`);
    const envelope = (await target.next(TOPIC_PRESENCE)) as StanzaEnvelope;
    expect(envelope.from).toBe(jid);
    expect(parseTrusted(envelope.xml).getChildText('show')).toBe('away');
  });

  it('accepts its own bare or full JID as from, and ends the stream for any other', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    client.send(`<message from='juliet@localhost' to='romeo@localhost' id='a'/>`);
    client.send(`<message from='${jid}' to='romeo@localhost' id='b'/>`);
    for (const id of ['a', 'b']) {
      const envelope = (await target.next(TOPIC_STANZAS)) as StanzaEnvelope;
      expect(parseTrusted(envelope.xml).attrs).toMatchObject({ id, from: jid });
    }
    client.send(`<message from='romeo@localhost/orchard' to='nurse@localhost'/>`);
    expect(await client.streamError()).toBe('invalid-from');
  });

  it.each([
    ['jid-malformed', `<message to='a@b@c' id='x'><body>hi</body></message>`],
    ['not-acceptable', `<message to='romeo@localhost' id='x'><sent xmlns='urn:xmpp:carbons:2'/></message>`],
    ['not-acceptable', `<message id='x'><result xmlns='urn:xmpp:mam:2' id='1'/></message>`],
    ['not-acceptable', `<message id='x'><forwarded xmlns='urn:xmpp:forward:0'/></message>`],
    [
      'forbidden',
      `<iq type='set' id='x' to='romeo@localhost'><query xmlns='jabber:iq:roster'><item jid='juliet@localhost'/></query></iq>`,
    ],
    ['bad-request', `<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`],
    ['bad-request', `<iq type='fetch' id='x'><ping xmlns='urn:xmpp:ping'/></iq>`],
    ['bad-request', `<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`],
    ['bad-request', `<iq type='set' id='x'/>`],
  ])('refuses with %s and publishes nothing: %s', async (expected, stanza) => {
    const target = await edge();
    const { client, jid } = await login(target);
    client.send(stanza);
    const reply = await client.element();
    expect(reply.attrs).toMatchObject({ type: 'error', to: jid });
    expect(stanzaCondition(reply)).toBe(expected);
    await expectNextPublished(target, client, 'after');
  });

  it('answers a stanza the bus refused with resource-constraint', async () => {
    const target = await edge();
    const { client } = await login(target);
    target.bus.refuse = /doomed/;
    client.send(`<message to='romeo@localhost' id='doomed'><body>x</body></message>`);
    const reply = await client.element();
    expect(reply.attrs).toMatchObject({ type: 'error', id: 'doomed' });
    expect(reply.getChild('error')?.attrs.type).toBe('wait');
    expect(stanzaCondition(reply)).toBe('resource-constraint');
  });

  it('lets a roster set to the own bare JID through', async () => {
    const target = await edge();
    const { client } = await login(target);
    client.send(
      `<iq type='set' id='r' to='juliet@localhost'><query xmlns='jabber:iq:roster'><item jid='romeo@localhost'/></query></iq>`,
    );
    const envelope = (await target.next(TOPIC_STANZAS)) as StanzaEnvelope;
    expect(parseTrusted(envelope.xml).attrs.id).toBe('r');
  });

  it('ends the stream with unsupported-stanza-type for unknown elements', async () => {
    const target = await edge();
    const { client } = await login(target);
    client.send(`<foo xmlns='urn:example:unknown'/>`);
    expect(await client.streamError()).toBe('unsupported-stanza-type');
  });

  it('writes stanzas Delivery hands it, and refuses unknown sessions', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    const record = await target.registry.get(jid);
    const target1 = { edgeId: 'edge-test', sessionId: record!.sessionId, jid };
    const xml = `<message from='romeo@localhost/orchard' to='${jid}' type='chat'><body>Hello</body></message>`;
    expect(await target.delivery.deliver(target1, { kind: 'stanza', xml })).toBe(true);
    expect((await client.element()).getChildText('body')).toBe('Hello');
    expect(await target.delivery.deliver({ ...target1, sessionId: 'gone' }, { kind: 'stanza', xml })).toBe(
      false,
    );
    expect(await target.delivery.deliver(target1, { kind: 'close', condition: 'policy-violation' })).toBe(
      true,
    );
    expect(await client.streamError()).toBe('policy-violation');
  });
});

describe('session ends', () => {
  function sessionEnds(target: TestEdge): SessionEndEnvelope[] {
    return target.pending(TOPIC_PRESENCE).filter((e): e is SessionEndEnvelope => e.t === 'session-end');
  }

  it('publishes one session end when the client closes the stream', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    client.send('</stream:stream>');
    await client.streamEnd();
    await client.closed;
    const end = (await target.next(TOPIC_PRESENCE)) as SessionEndEnvelope;
    expect(end).toMatchObject({ t: 'session-end', record: { jid, edgeId: 'edge-test' } });
    expect(await target.registry.get(jid)).toBeUndefined();
    await target.close();
    running = undefined;
    expect(sessionEnds(target)).toEqual([]);
  });

  it('publishes one session end when the connection drops', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    client.close();
    const end = (await target.next(TOPIC_PRESENCE)) as SessionEndEnvelope;
    expect(end.record.jid).toBe(jid);
    await target.close();
    running = undefined;
    expect(sessionEnds(target)).toEqual([]);
  });

  it('ends the older session of the same full JID with conflict, once', async () => {
    const target = await edge();
    const first = await login(target);
    clients.push(first.client);
    const oldRecord = await target.registry.get(first.jid);
    const second = await login(target);
    clients.push(second.client);
    expect(second.jid).toBe(first.jid);
    expect(await first.client.streamError()).toBe('conflict');
    const end = (await target.next(TOPIC_PRESENCE)) as SessionEndEnvelope;
    expect(end.record.sessionId).toBe(oldRecord?.sessionId);
    second.client.send(`<message to='romeo@localhost' id='still-here'/>`);
    const envelope = (await target.next(TOPIC_STANZAS)) as StanzaEnvelope;
    expect(parseTrusted(envelope.xml).attrs.id).toBe('still-here');
    expect(target.edge.sessionCount()).toBe(1);
    expect(sessionEnds(target)).toEqual([]);
  });

  it('ends every stream with system-shutdown on close and publishes their ends', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    const closing = target.edge.close();
    expect(await client.streamError()).toBe('system-shutdown');
    await closing;
    const ends = sessionEnds(target);
    expect(ends.map((e) => e.record.jid)).toEqual([jid]);
    expect(target.edge.sessionCount()).toBe(0);
  });
});

describe('a registry that lost its data', () => {
  it('gets the edge’s sessions back, with their presence and stream state, at the next lease renewal', async () => {
    const target = await edge({ cluster: { leaseSeconds: 2 } });
    const { client, jid } = await login(target);
    client.send(`<presence><priority>3</priority><status>here</status></presence>`);
    await target.next(TOPIC_PRESENCE);
    client.send(`<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>`);
    await target.next(TOPIC_STANZAS);
    client.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
    const enabled = await client.element();
    expect(enabled.name).toBe('enabled');
    const before = await target.registry.get(jid);

    // Everything the registry knew is gone, as with a Redis restarted without persistence.
    await target.registry.close();
    expect(await target.registry.get(jid)).toBeUndefined();
    await expect.poll(() => target.registry.get(jid), { timeout: 5000 }).toBeDefined();
    const restored = await target.registry.get(jid);
    expect(restored).toMatchObject({
      sessionId: before?.sessionId,
      edgeId: 'edge-test',
      available: true,
      priority: 3,
      interested: true,
      stream: String(enabled.attrs.id),
    });
    expect(restored?.presence).toContain('<status>here</status>');
    // The stream goes on: what is delivered now is queued under the restored state.
    const sessionId = before?.sessionId ?? '';
    expect(await target.registry.streamPush(jid, String(enabled.attrs.id), sessionId, '<message/>')).toBe(1);
  });
});

describe('stream resumption', () => {
  it('takes a delivery that comes as soon as the registry hands the stream over, before the edge heard back', async () => {
    const target = await edge();
    const { client, jid } = await login(target);
    client.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
    const previd = String((await client.element()).attrs.id);
    const first = await target.registry.get(jid);
    const chat = (body: string): string =>
      `<message from='romeo@localhost/orchard' to='${jid}' type='chat'><body>${body}</body></message>`;
    const to = { edgeId: 'edge-test', sessionId: first?.sessionId ?? '', jid };
    expect(await target.delivery.deliver(to, { kind: 'stanza', xml: chat('before the loss') })).toBe(true);
    expect((await client.element()).getChildText('body')).toBe('before the loss');
    client.close();
    await waitFor(() => target.edge.sessionCount() === 0, 5000, 'the lost stream to be detached');

    // A router that reads the registry right after the resumption moved the stream delivers to the new
    // session while the resuming edge still waits for the registry's answer.
    const resumeStream = target.registry.resumeStream.bind(target.registry);
    let early: Promise<boolean> | undefined;
    target.registry.resumeStream = async (bare, id, sessionId, edgeId) => {
      const resumed = await resumeStream(bare, id, sessionId, edgeId);
      early = target.delivery.deliver(
        { edgeId, sessionId, jid },
        { kind: 'stanza', xml: chat('during the resumption') },
      );
      return resumed;
    };
    const again = await tcp(target);
    await startTls(again);
    expect((await scramLogin(again, 'juliet', PASSWORD)).name).toBe('success');
    again.restart();
    await openStream(again);
    again.send(`<resume xmlns='urn:xmpp:sm:3' previd='${previd}' h='0'/>`);
    expect((await again.element()).name).toBe('resumed');
    const bodies: (string | null)[] = [];
    while (bodies.length < 2) {
      const el = await again.element();
      if (el.name === 'message') bodies.push(el.getChildText('body'));
      else expect(el.name).toBe('r');
    }
    expect(bodies).toEqual(['before the loss', 'during the resumption']);
    expect(await early).toBe(true);
  });
});
