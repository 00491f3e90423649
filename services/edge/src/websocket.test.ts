// RFC 7395 WebSocket framing and the HTTP endpoints of the edge's HTTP port.
import { afterEach, describe, expect, it } from 'vitest';
import { TOPIC_PRESENCE, TOPIC_STANZAS, type SessionEndEnvelope, type StanzaEnvelope } from '@starling/core';
import { NS_BIND, NS_FRAMING, NS_SASL, NS_STREAM, NS_TLS, parseTrusted } from '@starling/xmpp';
import { TestClient } from './test-client.ts';
import { authenticateAndBind, DOMAIN, openStream, startTestEdge, type TestEdge } from './test-edge.ts';

let running: TestEdge | undefined;
const clients: TestClient[] = [];

async function edge(settings: Record<string, unknown> = {}): Promise<TestEdge> {
  running = await startTestEdge(settings);
  return running;
}

async function ws(target: TestEdge): Promise<TestClient> {
  const client = await TestClient.websocket(target.edge.ports.http);
  clients.push(client);
  return client;
}

afterEach(async () => {
  await running?.close();
  running = undefined;
  for (const client of clients.splice(0)) client.close();
});

describe('WebSocket (RFC 7395)', () => {
  it('opens with <open/>, offers SASL without PLAIN or STARTTLS, and closes with <close/>', async () => {
    const target = await edge();
    const client = await ws(target);
    client.open(DOMAIN);
    const open = await client.header();
    expect(open).toMatchObject({ xmlns: NS_FRAMING, from: DOMAIN, version: '1.0' });
    const features = await client.element();
    expect(features.attrs['xmlns:stream']).toBe(NS_STREAM);
    expect(features.getChild('starttls', NS_TLS)).toBeUndefined();
    const offered = features
      .getChild('mechanisms', NS_SASL)
      ?.getChildren('mechanism')
      .map((m) => m.getText());
    expect(offered).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1']);
    client.send(`<close xmlns='${NS_FRAMING}'/>`);
    const close = await client.element();
    expect(close.is('close', NS_FRAMING)).toBe(true);
    await client.closed;
  });

  it('authenticates, binds and publishes with one element per message', async () => {
    const target = await edge();
    const client = await ws(target);
    await openStream(client);
    const jid = await authenticateAndBind(client, 'juliet', 'web');
    expect(jid).toBe('juliet@localhost/web');
    client.send(`<message xmlns='jabber:client' to='romeo@localhost' id='w1'><body>hi</body></message>`);
    const envelope = (await target.next(TOPIC_STANZAS)) as StanzaEnvelope;
    const message = parseTrusted(envelope.xml);
    expect(message.attrs).toMatchObject({ from: jid, id: 'w1' });
    expect(message.attrs.xmlns).toBeUndefined();

    const record = await target.registry.get(jid);
    const delivered = await target.delivery.deliver(
      { edgeId: 'edge-test', sessionId: record!.sessionId, jid },
      {
        kind: 'stanza',
        xml: `<message from='romeo@localhost/orchard' to='${jid}'><body>back</body></message>`,
      },
    );
    expect(delivered).toBe(true);
    const received = await client.element();
    expect(received.attrs.xmlns).toBe('jabber:client');
    expect(received.getChildText('body')).toBe('back');

    client.send(`<close xmlns='${NS_FRAMING}'/>`);
    await client.streamEnd();
    const end = (await target.next(TOPIC_PRESENCE)) as SessionEndEnvelope;
    expect(end.record.jid).toBe(jid);
  });

  it('sends stream errors with the stream prefix declared, then <close/>', async () => {
    const target = await edge();
    const client = await ws(target);
    await openStream(client);
    client.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='${NS_BIND}'/></iq>`);
    const error = await client.element();
    expect(error.name).toBe('stream:error');
    expect(error.attrs['xmlns:stream']).toBe(NS_STREAM);
    expect(error.getChild('not-authorized')).toBeDefined();
    await client.streamEnd();
    await client.closed;
  });

  it('refuses a handshake without the xmpp subprotocol', async () => {
    const target = await edge();
    await expect(TestClient.websocket(target.edge.ports.http, ['chat'])).rejects.toThrow(/400/);
  });
});

describe('HTTP endpoints', () => {
  it('answers /healthz, /readyz and 404 otherwise', async () => {
    const target = await edge();
    const base = `http://127.0.0.1:${target.edge.ports.http}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nothing-here`)).status).toBe(404);
    expect((await fetch(`${base}/xmpp-websocket`)).status).toBe(404);
  });

  it('answers /readyz with 503 while draining, and refuses new WebSockets', async () => {
    const target = await edge();
    const client = await ws(target);
    await openStream(client);
    await authenticateAndBind(client);
    // The session end waits on the bus, which keeps the edge draining while the probe runs.
    target.bus.hold();
    const closing = target.edge.close();
    expect(await client.streamError()).toBe('system-shutdown');
    const base = `http://127.0.0.1:${target.edge.ports.http}`;
    const ready = await fetch(`${base}/readyz`, { headers: { connection: 'close' } });
    expect(ready.status).toBe(503);
    await expect(TestClient.websocket(target.edge.ports.http)).rejects.toThrow(/503/);
    target.bus.release();
    await closing;
    const end = (await target.next(TOPIC_PRESENCE)) as SessionEndEnvelope;
    expect(end.record.jid).toBe('juliet@localhost/balcony');
  });
});
