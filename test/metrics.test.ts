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

const MiB = 2 ** 20;

/**
 * Sends messages until the archive thread shows staged rows (they wait for a quiet second; bounded),
 * then waits for the quiet move, which reports the thread's heap. Returns the scrape after it.
 */
async function archiveAndMove(server: TestServer): Promise<string> {
  const cast = new Cast(server);
  try {
    const romeo = await online(cast, 'romeo');
    const juliet = await online(cast, 'juliet');
    // Messages keep coming until the gauge shows some, so a stalled second cannot hide them.
    let staged: number | undefined;
    for (let n = 0; n < 100 && !(staged !== undefined && staged > 0); n++) {
      await romeo.send(`<message to='${juliet.bare}' type='chat'><body>line ${n}</body></message>`);
      await juliet.expect(message(romeo.jid, `line ${n}`));
      await new Promise((resolve) => setTimeout(resolve, 100));
      staged = reading(await scrape(server), 'xmpp_archive_staged_rows');
    }
    expect(staged).toBeGreaterThan(0);
    let text = await scrape(server);
    for (let n = 0; n < 100 && reading(text, 'xmpp_archive_staged_rows') !== 0; n++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      text = await scrape(server);
    }
    expect(reading(text, 'xmpp_archive_staged_rows')).toBe(0);
    return text;
  } finally {
    await cast.leave();
  }
}

describe('embedded /metrics', () => {
  it('serves the catalogue to a loopback client, with the archive thread’s rows and heap', async () => {
    const server = await startTestServer();
    try {
      const text = await archiveAndMove(server);
      expect(text).toMatch(/^xmpp_stanzas_received_total\{kind="message"\} [1-9]/m);
      expect(reading(text, 'xmpp_archive_move_failures_total')).toBe(0);
      expect(reading(text, 'xmpp_archive_heap_used_bytes')).toBeGreaterThan(0);
      // 1,024 MB of old generation at the default stanza limit, plus V8's young generation.
      expect(reading(text, 'xmpp_archive_heap_limit_bytes')).toBeGreaterThanOrEqual(1024 * MiB);
      expect(reading(text, 'xmpp_archive_heap_limit_bytes')).toBeLessThan(1536 * MiB);
      expect(text).toContain('xmpp_process_');
    } finally {
      await server.stop();
    }
  }, 60_000);

  it('gives the archive thread a heap that follows limits.stanzaBytes', async () => {
    const server = await startTestServer({ limits: { stanzaBytes: MiB } });
    try {
      const text = await archiveAndMove(server);
      // archiveHeapMb(1 MiB) is 4,096 MB.
      expect(reading(text, 'xmpp_archive_heap_limit_bytes')).toBeGreaterThanOrEqual(4096 * MiB);
      expect(reading(text, 'xmpp_archive_heap_limit_bytes')).toBeLessThan(4608 * MiB);
    } finally {
      await server.stop();
    }
  }, 60_000);
});
