// Smoke test of the benchmark's ejabberd: starts it pinned to CPU 0, registers and logs in over raw XMPP on plain
// TCP, STARTTLS and direct TLS, restarts it to see accounts persist, and checks that stopping leaves no process.
// Run: node --import tsx bench/src/servers/ejabberd-check.ts
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { isProcessRunning, startEjabberd, type EjabberdOptions, type RunningEjabberd } from './ejabberd.ts';

const DOMAIN = 'bench.example';
const HOST = '127.0.0.1';
const WAIT_MS = 10_000;

/** Accumulates what the server sends so each expectation consumes the text after the previous match. */
class Conversation {
  private received = '';
  socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
    this.listen();
  }

  private listen(): void {
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.received += chunk;
    });
  }

  /** Carries on over a socket that replaced the old one (after STARTTLS). */
  upgrade(socket: Socket): void {
    this.socket = socket;
    this.received = '';
    this.listen();
  }

  send(xml: string): void {
    this.socket.write(xml);
  }

  async expect(pattern: RegExp, what: string): Promise<RegExpExecArray> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const match = pattern.exec(this.received);
      if (match !== null) {
        this.received = this.received.slice(match.index + match[0].length);
        return match;
      }
      if (Date.now() > deadline || this.socket.destroyed) {
        throw new Error(`expected ${what}; the server sent: ${this.received.slice(0, 2000) || '(nothing)'}`);
      }
      await new Promise((done) => setTimeout(done, 20));
    }
  }

  /** Opens a stream and returns the <stream:features/> element. */
  async openStream(): Promise<string> {
    this.send(
      `<?xml version='1.0'?><stream:stream to='${DOMAIN}' xmlns='jabber:client' ` +
        `xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`,
    );
    return (await this.expect(/<stream:features[\s\S]*?<\/stream:features>/, 'stream features'))[0];
  }

  close(): void {
    this.socket.end('</stream:stream>');
    this.socket.destroy();
  }
}

function openTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, HOST, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** The certificate is self-signed, so only the handshake itself is checked. */
function openTls(options: { port: number } | { socket: Socket }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ ...options, host: HOST, servername: DOMAIN, rejectUnauthorized: false }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
  });
}

function requireFeature(features: string, pattern: RegExp, what: string): void {
  if (!pattern.test(features)) throw new Error(`stream features lack ${what}: ${features}`);
}

async function register(conversation: Conversation, user: string): Promise<'created' | 'conflict'> {
  conversation.send(
    `<iq type='set' id='r1'><query xmlns='jabber:iq:register'>` +
      `<username>${user}</username><password>pw</password></query></iq>`,
  );
  const reply = (
    await conversation.expect(/<iq\b[^>]*\bid=['"]r1['"][\s\S]*?(?:\/>|<\/iq>)/, 'register reply')
  )[0];
  if (/type=['"]result['"]/.test(reply)) return 'created';
  if (reply.includes('<conflict')) return 'conflict';
  throw new Error(`registration of ${user} failed: ${reply}`);
}

const b64 = (data: Buffer | string): string => Buffer.from(data).toString('base64');
const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** SCRAM-SHA-256 (RFC 7677) by hand; returns the iteration count the server asked for. */
async function scramLogin(conversation: Conversation, user: string, password: string): Promise<number> {
  const clientFirstBare = `n=${user},r=${randomBytes(18).toString('base64')}`;
  conversation.send(
    `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${b64(`n,,${clientFirstBare}`)}</auth>`,
  );
  const challenge = await conversation.expect(/<challenge[^>]*>([^<]*)<\/challenge>/, 'SCRAM challenge');
  const serverFirst = Buffer.from(challenge[1] ?? '', 'base64').toString();
  const fields = new Map(serverFirst.split(',').map((field) => [field[0], field.slice(2)]));
  const iterations = Number(fields.get('i'));
  const salted = pbkdf2Sync(password, Buffer.from(fields.get('s') ?? '', 'base64'), iterations, 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  const withoutProof = `c=${b64('n,,')},r=${fields.get('r') ?? ''}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const signature = hmac(createHash('sha256').update(clientKey).digest(), authMessage);
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ (signature[i] ?? 0)));
  conversation.send(
    `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${b64(`${withoutProof},p=${b64(proof)}`)}</response>`,
  );
  const success = await conversation.expect(
    /<success[^>]*>([^<]*)<\/success>|<failure[\s\S]*?<\/failure>/,
    'SASL outcome',
  );
  if (success[1] === undefined) throw new Error(`SCRAM login of ${user} failed: ${success[0]}`);
  const verifier = Buffer.from(success[1], 'base64').toString().replace(/^v=/, '');
  const expected = hmac(hmac(salted, 'Server Key'), authMessage);
  if (!timingSafeEqual(Buffer.from(verifier, 'base64'), expected))
    throw new Error('server signature mismatch');
  return iterations;
}

async function checkPlain(port: number): Promise<void> {
  const conversation = new Conversation(await openTcp(port));
  const features = await conversation.openStream();
  requireFeature(features, /<starttls\b/, 'STARTTLS');
  requireFeature(features, /<mechanism>SCRAM-SHA-256<\/mechanism>/, 'SCRAM-SHA-256');
  if ((await register(conversation, 'u0')) !== 'created') throw new Error('u0 already existed');
  conversation.close();

  const login = new Conversation(await openTcp(port));
  await login.openStream();
  const iterations = await scramLogin(login, 'u0', 'pw');
  if (iterations !== 4096) throw new Error(`SCRAM iterations are ${iterations}, expected 4096`);
  login.close();
  console.log(`plain TCP: registered u0, SCRAM-SHA-256 login ok (i=${iterations})`);
}

async function checkStartTls(port: number): Promise<void> {
  const conversation = new Conversation(await openTcp(port));
  requireFeature(await conversation.openStream(), /<starttls\b/, 'STARTTLS');
  conversation.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await conversation.expect(/<proceed\b[^>]*\/>/, 'STARTTLS proceed');
  const secure = await openTls({ socket: conversation.socket });
  conversation.upgrade(secure);
  requireFeature(await conversation.openStream(), /SCRAM-SHA-256/, 'SCRAM-SHA-256 after STARTTLS');
  if ((await register(conversation, 'u1')) !== 'created') throw new Error('u1 already existed');
  conversation.close();
  console.log('STARTTLS: TLS upgrade ok, registered u1');
}

async function checkDirectTls(port: number): Promise<void> {
  const conversation = new Conversation(await openTls({ port }));
  requireFeature(await conversation.openStream(), /SCRAM-SHA-256/, 'SCRAM-SHA-256 over direct TLS');
  if ((await register(conversation, 'u2')) !== 'created') throw new Error('u2 already existed');
  conversation.close();
  console.log('direct TLS: handshake ok, registered u2');
}

function rssKiB(pid: number): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const name = /^Name:\s*(.+)$/m.exec(status)?.[1] ?? '?';
    const rss = /^VmRSS:\s*(\d+) kB$/m.exec(status)?.[1] ?? '?';
    const cpus = /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1] ?? '?';
    return `${name}: RSS ${rss} KiB, CPUs ${cpus}`;
  } catch {
    return 'gone';
  }
}

async function stopAndCheck(server: RunningEjabberd): Promise<void> {
  const pids = server.pids();
  const started = Date.now();
  await server.stop();
  const left = pids.filter(isProcessRunning);
  if (left.length > 0) throw new Error(`processes left after stop: ${left.join(', ')}`);
  console.log(`stopped in ${Date.now() - started} ms; none of ${pids.join(', ')} remains`);
}

async function timedStart(options: EjabberdOptions): Promise<RunningEjabberd> {
  const started = Date.now();
  const server = await startEjabberd(options);
  console.log(`${server.name} answered on c2s after ${Date.now() - started} ms`);
  return server;
}

function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${DOMAIN}`],
      ...['-addext', `subjectAltName=DNS:${DOMAIN}`, '-keyout', key, '-out', cert],
    ],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

async function main(): Promise<void> {
  const temp = mkdtempSync(join(tmpdir(), 'ejabberd-check-'));
  const options: EjabberdOptions = {
    dir: join(temp, 'ejabberd'),
    domain: DOMAIN,
    host: HOST,
    c2sPort: 15222,
    directTlsPort: 15223,
    ...selfSignedCert(temp),
    cpu: 0,
  };
  let server: RunningEjabberd | undefined;
  try {
    server = await timedStart(options);
    await checkPlain(options.c2sPort);
    await checkStartTls(options.c2sPort);
    await checkDirectTls(options.directTlsPort);
    for (const pid of server.pids()) console.log(`pid ${pid} ${rssKiB(pid)}`);
    await stopAndCheck(server);

    // The mnesia database must survive a restart, or each benchmark run would start from nothing.
    server = await timedStart(options);
    const again = new Conversation(await openTcp(options.c2sPort));
    await again.openStream();
    if ((await register(again, 'u0')) !== 'conflict') throw new Error('u0 did not persist across a restart');
    again.close();
    console.log('restart: u0 persisted');
    await stopAndCheck(server);
  } catch (error) {
    await server?.stop();
    console.error(`ejabberd's files and logs are kept in ${temp}`);
    throw error;
  }
  rmSync(temp, { recursive: true, force: true });
  console.log('ejabberd check passed');
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
