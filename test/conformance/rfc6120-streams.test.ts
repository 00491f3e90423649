// RFC 6120 streams over TCP (STARTTLS), direct TLS (XEP-0368) and WebSocket (RFC 7395): negotiation,
// SASL, resource binding, `from` stamping, keepalives and closing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  RawClient,
  connect,
  rawLogin,
  startTestServer,
  streamHeader,
  type TestServer,
} from '../harness/index.ts';
import { scramLogin } from './scram-client.ts';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  for (const name of ['romeo', 'juliet', 'nurse', 'benvolio', 'tybalt'])
    await server.addUser(name, `${name}-secret`);
});

afterAll(async () => {
  await server.stop();
});

async function tlsStream(): Promise<RawClient> {
  const client = await RawClient.connect(server);
  client.write(streamHeader(server.domain));
  await client.read('</stream:features>');
  client.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await client.read(/<proceed[^>]*\/>/);
  await client.startTls(server);
  client.write(streamHeader(server.domain));
  return client;
}

describe('stream negotiation', () => {
  it('offers only STARTTLS, as required, before TLS', async () => {
    const client = await RawClient.connect(server);
    client.write(streamHeader(server.domain));
    const features = await client.read('</stream:features>');
    expect(features).toMatch(/<stream:stream[^>]*from=['"]localhost['"]/);
    expect(features).toMatch(/<stream:stream[^>]*version=['"]1\.0['"]/);
    expect(features).toMatch(/<starttls xmlns=['"]urn:ietf:params:xml:ns:xmpp-tls['"]>\s*<required\/>/);
    expect(features).not.toContain('<mechanisms');
    client.destroy();
  });

  it('offers SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN after STARTTLS', async () => {
    const client = await tlsStream();
    const features = await client.read('</stream:features>');
    expect(features).toContain('<mechanism>SCRAM-SHA-256</mechanism>');
    expect(features).toContain('<mechanism>SCRAM-SHA-1</mechanism>');
    expect(features).toContain('<mechanism>PLAIN</mechanism>');
    expect(features).not.toContain('<starttls');
    client.destroy();
  });

  it('answers a stream to another domain with host-unknown', async () => {
    const client = await RawClient.connect(server);
    client.write(streamHeader('example.net'));
    await client.expectStreamError('host-unknown');
  });

  it('answers an unsupported version with unsupported-version', async () => {
    const client = await RawClient.connect(server);
    client.write(
      "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>",
    );
    await client.expectStreamError('unsupported-version');
  });

  it('closes the stream when the client does', async () => {
    const client = await RawClient.connect(server);
    client.write(streamHeader(server.domain));
    await client.read('</stream:features>');
    client.write('</stream:stream>');
    await client.read('</stream:stream>');
    await client.closed;
  });
});

describe('SASL', () => {
  it('authenticates with SCRAM-SHA-256 and verifies the server signature', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    expect(await scramLogin(client, 'SCRAM-SHA-256', 'romeo', 'romeo-secret')).toContain('<success');
    client.destroy();
  });

  it('authenticates with SCRAM-SHA-1', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    expect(await scramLogin(client, 'SCRAM-SHA-1', 'juliet', 'juliet-secret')).toContain('<success');
    client.destroy();
  });

  it('fails a wrong SCRAM password with not-authorized and lets the client try again', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    expect(await scramLogin(client, 'SCRAM-SHA-256', 'romeo', 'wrong')).toMatch(
      /<failure[^>]*>\s*<not-authorized\/>/,
    );
    expect(await scramLogin(client, 'SCRAM-SHA-256', 'romeo', 'romeo-secret')).toContain('<success');
    client.destroy();
  });

  it('fails an unknown user the same way as a wrong password', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    expect(await scramLogin(client, 'SCRAM-SHA-256', 'nobody', 'x')).toMatch(/<not-authorized\/>/);
    client.destroy();
  });

  it('answers an unknown mechanism with invalid-mechanism', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    client.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'/>");
    await client.read(/<failure[^>]*>\s*<invalid-mechanism\/>/);
    client.destroy();
  });

  it('answers bad base64 with incorrect-encoding', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    client.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!not base64</auth>");
    await client.read(/<failure[^>]*>\s*<incorrect-encoding\/>/);
    client.destroy();
  });

  it('answers an abort with aborted', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    client.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from('n,,n=romeo,r=abc').toString('base64')}</auth>`,
    );
    await client.read('</challenge>');
    client.write("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    await client.read(/<failure[^>]*>\s*<aborted\/>/);
    client.destroy();
  });

  it('refuses an authorization identity of another user with invalid-authzid', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    const plain = Buffer.from('juliet@localhost\0romeo\0romeo-secret').toString('base64');
    client.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    await client.read(/<failure[^>]*>\s*<invalid-authzid\/>/);
    client.destroy();
  });

  it('does not offer PLAIN on an unencrypted WebSocket, and refuses it there', async () => {
    const ws = new WebSocket(`ws://${server.host}:${server.ports.http}/xmpp-websocket`, 'xmpp');
    const messages: string[] = [];
    ws.on('message', (data: Buffer) => messages.push(data.toString()));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
    await expect.poll(() => messages.some((m) => m.includes('<stream:features'))).toBe(true);
    const features = messages.find((m) => m.includes('<stream:features')) ?? '';
    expect(features).toContain('<mechanism>SCRAM-SHA-256</mechanism>');
    expect(features).not.toContain('<mechanism>PLAIN</mechanism>');
    const plain = Buffer.from('\0romeo\0romeo-secret').toString('base64');
    ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    await expect
      .poll(() =>
        messages.some((m) =>
          /<failure[^>]*>\s*<(encryption-required|mechanism-too-weak|invalid-mechanism)\/>/.test(m),
        ),
      )
      .toBe(true);
    ws.close();
  });
});

describe('transports with an independent client library', () => {
  for (const transport of ['starttls', 'direct-tls', 'websocket'] as const) {
    it(`logs in over ${transport} and is answered`, async () => {
      const client = await connect(server, {
        username: 'nurse',
        password: 'nurse-secret',
        transport,
        resource: transport,
      });
      expect(client.jid).toBe(`nurse@localhost/${transport}`);
      const pong = await client.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
      expect(pong.attrs.type).toBe('result');
      await client.stop();
    });
  }
});

describe('resource binding', () => {
  it('generates a resource when the client asks for none', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    client.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0benvolio\0benvolio-secret').toString('base64')}</auth>`,
    );
    await client.read('<success');
    client.write(streamHeader(server.domain));
    const features = await client.read('</stream:features>');
    expect(features).toMatch(/<bind xmlns=['"]urn:ietf:params:xml:ns:xmpp-bind['"]/);
    client.write("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    const bound = await client.read('</iq>');
    expect(bound).toMatch(/<jid>benvolio@localhost\/[^<]+<\/jid>/);
    client.destroy();
  });

  it('replaces an older session bound to the same full JID; the old one gets conflict', async () => {
    const first = await RawClient.connect(server);
    await rawLogin(first, server, 'tybalt', 'tybalt-secret', 'sword');
    const second = await connect(server, {
      username: 'tybalt',
      password: 'tybalt-secret',
      resource: 'sword',
    });
    expect(second.jid).toBe('tybalt@localhost/sword');
    await first.expectStreamError('conflict');
    const pong = await second.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(pong.attrs.type).toBe('result');
    await second.stop();
  });

  it('refuses a resourcepart with a control character (allowed in XML, not in RFC 7622) with bad-request', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    client.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0benvolio\0benvolio-secret').toString('base64')}</auth>`,
    );
    await client.read('<success');
    client.write(streamHeader(server.domain));
    await client.read('</stream:features>');
    client.write(
      "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>&#x85;next-line</resource></bind></iq>",
    );
    await client.read(/<iq[^>]*type=['"]error['"][\s\S]*<bad-request[\s\S]*?<\/iq>/);
    client.destroy();
  });
});

describe('stanzas of a bound session', () => {
  it('stamps from with the full JID whatever the client wrote', async () => {
    const romeo = await connect(server, { username: 'romeo', password: 'romeo-secret', resource: 'balcony' });
    const juliet = await connect(server, {
      username: 'juliet',
      password: 'juliet-secret',
      resource: 'garden',
    });
    await romeo.send("<message to='juliet@localhost/garden' type='chat'><body>hello</body></message>");
    await romeo.send(
      "<message to='juliet@localhost/garden' from='romeo@localhost' type='chat'><body>bare from</body></message>",
    );
    const first = await juliet.expect((el) => el.getChildText('body') === 'hello');
    expect(first.attrs.from).toBe('romeo@localhost/balcony');
    const second = await juliet.expect((el) => el.getChildText('body') === 'bare from');
    expect(second.attrs.from).toBe('romeo@localhost/balcony');
    await romeo.stop();
    await juliet.stop();
  });

  it('ends the stream with invalid-from when the client spoofs another user', async () => {
    const client = await RawClient.connect(server);
    await rawLogin(client, server, 'romeo', 'romeo-secret', 'spoof');
    client.write(
      "<message to='juliet@localhost' from='juliet@localhost/x' type='chat'><body>spoof</body></message>",
    );
    await client.expectStreamError('invalid-from');
  });

  it('answers a malformed to with jid-malformed', async () => {
    const client = await RawClient.connect(server);
    await rawLogin(client, server, 'romeo', 'romeo-secret', 'jm');
    client.write("<message id='m1' to='juliet@@localhost' type='chat'><body>x</body></message>");
    await client.read(/<message[^>]*type=['"]error['"][\s\S]*?<jid-malformed[\s\S]*?<\/message>/);
    client.destroy();
  });

  it('accepts whitespace keepalives at any point', async () => {
    const client = await RawClient.connect(server);
    await rawLogin(client, server, 'romeo', 'romeo-secret', 'keepalive');
    client.write(' \n ');
    client.write("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    client.write('\n\n');
    await client.read(
      /<iq[^>]*id=['"]p1['"][^>]*type=['"]result['"]|<iq[^>]*type=['"]result['"][^>]*id=['"]p1['"]/,
    );
    client.destroy();
  });

  it('refuses a restarted stream addressed to another domain after authentication', async () => {
    const client = await tlsStream();
    await client.read('</stream:features>');
    client.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0romeo\0romeo-secret').toString('base64')}</auth>`,
    );
    await client.read('<success');
    client.write(streamHeader('example.org'));
    await client.expectStreamError('host-unknown');
  });
});
