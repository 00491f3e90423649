// The `starling` command as an operator uses it: account management, configuration errors, serve and stop.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { client as xmppClient } from '@xmpp/client';

const BIN = new URL('../../../bin/starling.js', import.meta.url).pathname;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dataDir: string;

function run(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, STARLING_DATA_DIR: dataDir, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'starling-cli-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

// Each step below starts the program anew (about a second each on an idle machine, several under load).
describe('starling user', () => {
  it('adds, lists, changes and deletes accounts, and never stores a password in clear', async () => {
    const added = await run(['user', 'add', 'alice', '--password', 'plaintext-never-stored']);
    expect(added.stderr).toBe('');
    expect(added.stdout).toContain('added alice@localhost');
    expect(added.code).toBe(0);

    const piped = await run(['user', 'add', 'Bob@localhost'], { input: 'piped-password\n' });
    expect(piped.stdout).toContain('added bob@localhost');

    const list = await run(['user', 'list']);
    expect(list.stdout.trim().split('\n').sort()).toEqual(['alice@localhost', 'bob@localhost']);

    const duplicate = await run(['user', 'add', 'alice', '--password', 'x']);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toContain('exists already');

    expect((await run(['user', 'passwd', 'alice'], { input: 'second-password\n' })).code).toBe(0);

    for (const file of await readdir(dataDir)) {
      if (!file.startsWith('starling.db')) continue;
      const bytes = await readFile(join(dataDir, file));
      expect(bytes.includes('plaintext-never-stored')).toBe(false);
      expect(bytes.includes('piped-password')).toBe(false);
      expect(bytes.includes('second-password')).toBe(false);
    }

    expect((await run(['user', 'del', 'alice'])).stdout).toContain('deleted alice@localhost');
    const again = await run(['user', 'del', 'alice']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('no user alice@localhost');
  }, 60_000);

  it('says what is wrong with a username', async () => {
    const bad = await run(['user', 'add', 'a b', '--password', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('not a valid username');
    const foreign = await run(['user', 'add', 'carol@example.org', '--password', 'x']);
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toContain("not on this server's domain");
    const empty = await run(['user', 'add', 'carol'], { input: '\n' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('password is empty');
  }, 30_000);
});

describe('starling config check', () => {
  it('prints the effective configuration', async () => {
    const ok = await run(['config', 'check'], { env: { STARLING_DOMAIN: 'chat.example' } });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('"domain": "chat.example"');
  });

  it('names each bad setting of a config file', async () => {
    const file = join(dataDir, 'bad.yaml');
    await writeFile(file, 'listen:\n  c2sPort: 99999\nregistration: sometimes\nunknownSetting: 1\n');
    const bad = await run(['config', 'check', '--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('listen.c2sPort');
    expect(bad.stderr).toContain('registration');
    expect(bad.stderr).toContain('unknownSetting');
  });

  it('names a bad environment variable', async () => {
    const bad = await run(['config', 'check'], { env: { STARLING_C2S_PORT: 'fifty' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('STARLING_C2S_PORT');
  });

  it('refuses a file that is not YAML', async () => {
    const file = join(dataDir, 'broken.yaml');
    await writeFile(file, 'listen: [unclosed\n');
    const bad = await run(['config', 'check', '--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('not valid YAML');
  });
});

describe('starling serve', () => {
  it('starts, says where it listens, serves clients, and stops cleanly on SIGTERM', async () => {
    await run(['user', 'add', 'alice', '--password', 'alice-secret']);
    const child = spawn(process.execPath, [BIN], {
      env: {
        ...process.env,
        STARLING_DATA_DIR: dataDir,
        STARLING_C2S_PORT: '0',
        STARLING_DIRECT_TLS_PORT: '0',
        STARLING_HTTP_PORT: '0',
        STARLING_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let banner = '';
    child.stderr.on('data', (d: Buffer) => (banner += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await expect.poll(() => banner.includes('Add a user with'), { timeout: 15_000 }).toBe(true);
    expect(banner).toContain('serving localhost');
    const port = /\(TLS\)\s+127\.0\.0\.1:(\d+)/.exec(banner)?.[1];
    expect(port).toBeDefined();
    const certificate = await readFile(join(dataDir, 'tls', 'cert.pem'), 'utf8');
    expect(certificate).toContain('BEGIN CERTIFICATE');

    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    const xmpp = xmppClient({
      service: `xmpps://127.0.0.1:${port}`,
      domain: 'localhost',
      timeout: 15_000, // the library's 2 s default is too short on a busy CI machine
      username: 'alice',
      password: 'alice-secret',
    });
    xmpp.on('error', () => undefined);
    const jid = await xmpp.start();
    expect(jid.toString()).toMatch(/^alice@localhost\//);
    xmpp.reconnect.stop();
    const closedByServer = new Promise((resolve) => xmpp.once('disconnect', resolve));

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await closedByServer;
  }, 30_000);
});
