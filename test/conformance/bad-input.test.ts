// RFC 6120 §4.9, §11 and §13: hostile or broken input ends in the standard error, and the server and
// every other session go on as before.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  RawClient,
  connect,
  rawLogin,
  startTestServer,
  streamHeader,
  type TestClient,
  type TestServer,
} from '../harness/index.ts';
import { NS_EXPLODE } from './fault-injection.ts';

let server: TestServer;
let bystander: TestClient;

beforeAll(async () => {
  server = await startTestServer({}, new URL('./fault-injection.ts', import.meta.url));
  for (const name of ['mallory', 'alice', 'bob']) await server.addUser(name, `${name}-secret`);
  bystander = await connect(server, { username: 'alice', password: 'alice-secret', resource: 'bystander' });
});

afterAll(async () => {
  await bystander.stop();
  await server.stop();
});

afterEach(async () => {
  // Whatever the last test threw at the server, another session still gets answers.
  const pong = await bystander.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  expect(pong.attrs.type).toBe('result');
});

/** A stream after the header and features, before TLS. */
async function openStream(): Promise<RawClient> {
  const client = await RawClient.connect(server);
  client.write(streamHeader(server.domain));
  await client.read('</stream:features>');
  return client;
}

async function loggedIn(resource: string): Promise<RawClient> {
  const client = await RawClient.connect(server);
  await rawLogin(client, server, 'mallory', 'mallory-secret', resource);
  return client;
}

describe('restricted XML (RFC 6120 §11.1)', () => {
  const cases: [string, string][] = [
    ['a DOCTYPE', '<!DOCTYPE foo>'],
    ['an entity declaration', '<!DOCTYPE x [<!ENTITY a "b">]>'],
    ['a comment', '<!-- hello -->'],
    ['a processing instruction', '<?evil data?>'],
  ];
  for (const [what, input] of cases) {
    it(`ends the stream on ${what} before authentication`, async () => {
      const client = await openStream();
      client.write(input);
      await client.expectStreamError('restricted-xml');
    });
    it(`ends the stream on ${what} inside a stanza after authentication`, async () => {
      const client = await loggedIn(`restricted-${what.replace(/\W/g, '')}`);
      client.write(`<message to='bob@localhost'>${input}</message>`);
      await client.expectStreamError('restricted-xml');
    });
  }
  it('ends the stream on a DOCTYPE before the stream header', async () => {
    const client = await RawClient.connect(server);
    client.write("<?xml version='1.0'?><!DOCTYPE stream:stream>");
    await client.expectStreamError('restricted-xml');
  });
});

describe('XML that is not well-formed', () => {
  const cases: [string, string, string][] = [
    ['mismatched tags', "<message to='bob@localhost'><body>x</bodyx></message>", 'not-well-formed'],
    ['an unquoted attribute', '<message to=bob@localhost><body>x</body></message>', 'not-well-formed'],
    [
      'a valueless attribute',
      "<message to='bob@localhost' hidden><body>x</body></message>",
      'not-well-formed',
    ],
    ['a duplicate attribute', "<message to='bob@localhost' to='alice@localhost'/>", 'not-well-formed'],
    ['an invalid name', "<message to='bob@localhost'><1body>x</1body></message>", 'not-well-formed'],
    [
      'a forbidden character reference',
      "<message to='bob@localhost'><body>&#1;</body></message>",
      'not-well-formed',
    ],
    ['an unknown entity', "<message to='bob@localhost'><body>&nbsp;</body></message>", 'not-well-formed'],
  ];
  for (const [what, input, condition] of cases) {
    it(`ends the stream on ${what}`, async () => {
      const client = await loggedIn(`wf-${what.replace(/\W/g, '')}`);
      client.write(input);
      await client.expectStreamError(condition);
    });
  }

  it('ends the stream on an undeclared namespace prefix', async () => {
    const client = await loggedIn('prefix');
    client.write("<message to='bob@localhost'><foo:body>x</foo:body></message>");
    const error = await client.read('</stream:stream>');
    expect(error).toMatch(/<(bad-namespace-prefix|not-well-formed) xmlns=/);
    await client.closed;
  });

  it('ends the stream on invalid UTF-8', async () => {
    const client = await loggedIn('utf8');
    client.write(
      Buffer.concat([
        Buffer.from("<message to='bob@localhost'><body>"),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('</body></message>'),
      ]),
    );
    await client.expectStreamError('not-well-formed');
  });

  it('ends the stream on a truncated UTF-8 sequence', async () => {
    const client = await loggedIn('utf8-trunc');
    // 0xE2 0x82 starts a three-byte character; '<' cannot continue it.
    client.write(
      Buffer.concat([
        Buffer.from("<message to='bob@localhost'><body>"),
        Buffer.from([0xe2, 0x82]),
        Buffer.from('</body></message>'),
      ]),
    );
    await client.expectStreamError('not-well-formed');
  });

  it('delivers multibyte characters split across writes intact', async () => {
    const bob = await connect(server, { username: 'bob', password: 'bob-secret', resource: 'utf8' });
    const client = await loggedIn('splitter');
    const text = 'é€😀 añ日本';
    const bytes = Buffer.from(`<message to='bob@localhost/utf8' type='chat'><body>${text}</body></message>`);
    for (let i = 0; i < bytes.length; i++) client.write(bytes.subarray(i, i + 1));
    const received = await bob.expect(
      (el) => el.name === 'message' && el.attrs.from === 'mallory@localhost/splitter',
    );
    expect(received.getChildText('body')).toBe(text);
    client.destroy();
    await bob.stop();
  });
});

describe('stream namespaces and headers', () => {
  it('answers a wrong stream namespace with invalid-namespace', async () => {
    const client = await RawClient.connect(server);
    client.write(
      "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='urn:wrong' version='1.0'>",
    );
    await client.expectStreamError('invalid-namespace');
  });

  it('answers a wrong content namespace with invalid-namespace', async () => {
    const client = await RawClient.connect(server);
    client.write(
      "<stream:stream to='localhost' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
    );
    await client.expectStreamError('invalid-namespace');
  });

  it('ends the stream on a second stream header without a restart', async () => {
    const client = await loggedIn('second-header');
    client.write(streamHeader(server.domain).replace("<?xml version='1.0'?>", ''));
    const text = await client.read('</stream:stream>');
    expect(text).toMatch(/<stream:error>\s*<(not-well-formed|invalid-xml|policy-violation|conflict) xmlns=/);
    await client.closed;
  });
});

describe('limits (RFC 6120 §13.12)', () => {
  it('refuses an element over 8 KiB before authentication with policy-violation', async () => {
    const client = await openStream();
    client.write(`<foo>${'a'.repeat(9 * 1024)}</foo>`);
    await client.expectStreamError('policy-violation');
  });

  it('refuses a stanza over 256 KiB after authentication with policy-violation', async () => {
    const client = await loggedIn('big');
    client.write(`<message to='bob@localhost'><body>${'a'.repeat(257 * 1024)}</body></message>`);
    await client.expectStreamError('policy-violation');
  });

  it('accepts a 200 KiB stanza written in small pieces', async () => {
    const bob = await connect(server, { username: 'bob', password: 'bob-secret', resource: 'big' });
    const client = await loggedIn('trickle');
    const body = 'b'.repeat(200 * 1024);
    const bytes = Buffer.from(`<message to='bob@localhost/big' type='chat'><body>${body}</body></message>`);
    for (let i = 0; i < bytes.length; i += 7) client.write(bytes.subarray(i, i + 7));
    const received = await bob.expect((el) => el.attrs.from === 'mallory@localhost/trickle', 20_000);
    expect(received.getChildText('body')?.length).toBe(body.length);
    client.destroy();
    await bob.stop();
  });

  it('refuses nesting deeper than the limit with policy-violation', async () => {
    const client = await loggedIn('deep');
    client.write(`<message to='bob@localhost'>${'<x>'.repeat(100)}${'</x>'.repeat(100)}</message>`);
    await client.expectStreamError('policy-violation');
  });

  it('refuses too many attributes with policy-violation', async () => {
    const client = await loggedIn('attrs');
    const attrs = Array.from({ length: 100 }, (_, i) => `a${i}='v'`).join(' ');
    client.write(`<message to='bob@localhost' ${attrs}/>`);
    await client.expectStreamError('policy-violation');
  });

  it('refuses too many children with policy-violation', async () => {
    const client = await loggedIn('children');
    client.write(`<message to='bob@localhost'>${'<x/>'.repeat(2000)}</message>`);
    await client.expectStreamError('policy-violation');
  });
});

describe('authentication state', () => {
  it('answers a stanza before authentication with not-authorized', async () => {
    const client = await openStream();
    client.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await client.read(/<proceed[^>]*\/>/);
    await client.startTls(server);
    client.write(streamHeader(server.domain));
    await client.read('</stream:features>');
    client.write("<message to='bob@localhost'><body>hi</body></message>");
    await client.expectStreamError('not-authorized');
  });

  it('answers a stanza before the required STARTTLS with policy-violation (RFC 6120 §5.3.1)', async () => {
    const client = await openStream();
    client.write("<message to='bob@localhost'><body>hi</body></message>");
    await client.expectStreamError('policy-violation');
  });

  it('discards plaintext pipelined after <starttls/>', async () => {
    const client = await openStream();
    // Anything after <starttls/> in the same write must not be read as part of the TLS handshake or the next stream.
    client.write(
      "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='bob@localhost'><body>injected</body></message>",
    );
    await client.read(/<proceed[^>]*\/>/);
    await client.startTls(server);
    client.write(streamHeader(server.domain));
    const features = await client.read('</stream:features>');
    expect(features).toContain('<mechanisms');
    client.destroy();
  });
});

describe('forged content', () => {
  it('refuses a client-sent carbon copy with not-acceptable', async () => {
    const client = await loggedIn('carbon');
    client.write(
      "<message id='c1' to='bob@localhost'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost'><body>fake</body></message></forwarded></sent></message>",
    );
    await client.read(/<message[^>]*type=['"]error['"][\s\S]*?<not-acceptable[\s\S]*?<\/message>/);
    client.destroy();
  });

  it('refuses a client-sent forwarded wrapper with not-acceptable', async () => {
    const client = await loggedIn('forward');
    client.write(
      "<message id='f1' to='bob@localhost'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@localhost/x'><body>fake</body></message></forwarded></message>",
    );
    await client.read(/<message[^>]*type=['"]error['"][\s\S]*?<not-acceptable[\s\S]*?<\/message>/);
    client.destroy();
  });

  it('refuses a roster push to another user with forbidden', async () => {
    const client = await loggedIn('push');
    client.write(
      "<iq id='r1' type='set' to='bob@localhost/x'><query xmlns='jabber:iq:roster'><item jid='mallory@localhost' subscription='both'/></query></iq>",
    );
    await client.read(/<iq[^>]*type=['"]error['"][\s\S]*?<forbidden[\s\S]*?<\/iq>/);
    client.destroy();
  });
});

describe('handler failures', () => {
  it('answers a failing handler with internal-server-error and keeps the session', async () => {
    const client = await connect(server, { username: 'bob', password: 'bob-secret', resource: 'boom' });
    const failed = await client.iq(`<iq type='get' to='localhost'><boom xmlns='${NS_EXPLODE}'/></iq>`);
    expect(failed.attrs.type).toBe('error');
    expect(failed.getChild('error')?.getChild('internal-server-error')).toBeDefined();
    const refused = await client.iq(`<iq type='get' to='localhost'><refuse xmlns='${NS_EXPLODE}'/></iq>`);
    expect(refused.getChild('error')?.getChild('not-allowed')).toBeDefined();
    const pong = await client.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(pong.attrs.type).toBe('result');
    await client.stop();
  });
});
