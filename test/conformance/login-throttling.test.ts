// RFC 6120 §6.4.5 and §13.9.1: failed logins from one address are slowed down, then refused for a while.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startTestServer, streamHeader, type TestServer } from '../harness/index.ts';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({
    auth: { failuresBeforeDelay: 2, failureDelayMs: 300, failuresBeforeBlock: 4, blockSeconds: 60 },
  });
  await server.addUser('bob', 'bob-secret');
});

afterAll(async () => {
  await server.stop();
});

describe('failed logins', () => {
  it('delays repeated failures from one address, then refuses it even with the right password', async () => {
    // An edge counts the failures it sees (in its own memory): in the cluster shape this scenario stays on
    // one edge, and an address spreading its attempts over N edges gets N times as many before a block.
    const [edge] = server.edges;
    const attempt = async (password: string): Promise<{ reply: string; ms: number }> => {
      const client = await RawClient.connect(server, 'c2s', edge);
      client.write(streamHeader(server.domain));
      await client.read('</stream:features>');
      client.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      await client.read(/<proceed[^>]*\/>/);
      await client.startTls(server);
      client.write(streamHeader(server.domain));
      await client.read('</stream:features>');
      const started = Date.now();
      client.write(
        `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0bob\0${password}`).toString('base64')}</auth>`,
      );
      const reply = await client.read(
        /<success[^>]*\/>|<success[\s\S]*?<\/success>|<failure[\s\S]*?<\/failure>/,
      );
      const ms = Date.now() - started;
      client.destroy();
      return { reply, ms };
    };
    // Failures 1 and 2 are answered at once; failure 3 waits at least the configured delay.
    expect((await attempt('wrong')).reply).toContain('<not-authorized/>');
    expect((await attempt('wrong')).reply).toContain('<not-authorized/>');
    const third = await attempt('wrong');
    expect(third.reply).toContain('<not-authorized/>');
    expect(third.ms).toBeGreaterThanOrEqual(250);
    expect((await attempt('wrong')).reply).toContain('<not-authorized/>');
    // Past four failures the address is refused for a while, even with the right password.
    const blocked = await attempt('bob-secret');
    expect(blocked.reply).toContain('<temporary-auth-failure/>');
  });
});
