// The embedded server's /metrics on its HTTP port: what a scraper on the same machine reads. (Cluster
// roles serve theirs on an ops port of their own: test/cluster/cluster.test.ts.)
import { describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness/index.ts';
import { message } from './conformance/matchers.ts';
import { Cast, online } from './conformance/steps.ts';

async function scrape(server: TestServer): Promise<string> {
  const response = await fetch(`http://${server.host}:${server.ports.http}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

function reading(text: string, name: string): number | undefined {
  const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return line?.[1] === undefined ? undefined : Number(line[1]);
}

describe('embedded /metrics', () => {
  it('serves the catalogue to a loopback client, with the archive thread’s staged rows', async () => {
    const server = await startTestServer();
    const cast = new Cast(server);
    try {
      const romeo = await online(cast, 'romeo');
      const juliet = await online(cast, 'juliet');
      // Archived rows wait staged until a quiet second passes; messages keep coming until the gauge
      // shows some (bounded), so a stalled second cannot hide them.
      let staged: number | undefined;
      for (let n = 0; n < 100 && !(staged !== undefined && staged > 0); n++) {
        await romeo.send(`<message to='${juliet.bare}' type='chat'><body>line ${n}</body></message>`);
        await juliet.expect(message(romeo.jid, `line ${n}`));
        await new Promise((resolve) => setTimeout(resolve, 100));
        staged = reading(await scrape(server), 'xmpp_archive_staged_rows');
      }
      expect(staged).toBeGreaterThan(0);
      const text = await scrape(server);
      expect(text).toMatch(/^xmpp_stanzas_received_total\{kind="message"\} [1-9]/m);
      expect(reading(text, 'xmpp_archive_move_failures_total')).toBe(0);
      expect(text).toContain('xmpp_process_');
    } finally {
      await cast.leave();
      await server.stop();
    }
  }, 60_000);
});
