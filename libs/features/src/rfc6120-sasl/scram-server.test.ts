// RFC 5802 / RFC 7677: the SCRAM server against the RFC examples and a client written here.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Account } from '@starling/ports';
import {
  deriveScramKeys,
  digest,
  hmac,
  saltedPassword,
  xorBuffers,
  type ScramHashName,
} from '@starling/xmpp';
import type { SaslServerOptions, SaslStep } from './mechanism.ts';
import { ScramServerExchange } from './scram-server.ts';

const DOMAIN = 'example.com';

async function accountsWith(password: string, salt: Buffer, iterations = 4096) {
  const account: Account = {
    username: 'user',
    scram: {
      'SHA-1': await deriveScramKeys('SHA-1', password, iterations, salt),
      'SHA-256': await deriveScramKeys('SHA-256', password, iterations, salt),
    },
    createdAt: 0,
  };
  return { get: (name: string) => Promise.resolve(name === 'user' ? account : undefined) };
}

function options(accounts: SaslServerOptions['accounts'], nonce?: string): SaslServerOptions {
  return {
    accounts,
    domain: DOMAIN,
    iterations: 4096,
    fakeSaltKey: Buffer.from('fake-salt-key'),
    ...(nonce === undefined ? {} : { nonce: () => nonce }),
  };
}

function text(step: SaslStep): string {
  if (step.kind === 'failure') throw new Error(`unexpected failure ${step.condition}`);
  return step.data?.toString('utf8') ?? '';
}

/** The `k=v` attributes of a SCRAM message. */
function scramAttributes(message: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const field of message.split(',')) attrs[field.slice(0, 1)] = field.slice(2);
  return attrs;
}

/** A client per RFC 5802 §3, to drive the server through whole exchanges. */
class ScramClient {
  readonly hash: ScramHashName;
  readonly gs2: string;
  readonly first: string;
  serverSignature: Buffer = Buffer.alloc(0);

  constructor(hash: ScramHashName, name: string, gs2 = 'n,,', nonce = randomBytes(12).toString('base64')) {
    this.hash = hash;
    this.gs2 = gs2;
    this.first = `n=${name},r=${nonce}`;
  }

  clientFirst(): Buffer {
    return Buffer.from(this.gs2 + this.first);
  }

  async clientFinal(
    serverFirst: string,
    password: string,
    tamper: { nonce?: string; binding?: string } = {},
  ) {
    const attrs = scramAttributes(serverFirst);
    const salted = await saltedPassword(
      this.hash,
      password,
      Buffer.from(attrs.s!, 'base64'),
      Number(attrs.i),
    );
    const clientKey = hmac(this.hash, salted, 'Client Key');
    const binding = tamper.binding ?? Buffer.from(this.gs2).toString('base64');
    const withoutProof = `c=${binding},r=${tamper.nonce ?? attrs.r!}`;
    const authMessage = `${this.first},${serverFirst},${withoutProof}`;
    const proof = xorBuffers(clientKey, hmac(this.hash, digest(this.hash, clientKey), authMessage));
    this.serverSignature = hmac(this.hash, hmac(this.hash, salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }
}

describe('SCRAM server: RFC examples', () => {
  it('reproduces the RFC 5802 §5 SCRAM-SHA-1 example', async () => {
    const accounts = await accountsWith('pencil', Buffer.from('QSXCR+Q6sek8bf92', 'base64'));
    const server = new ScramServerExchange('SHA-1', options(accounts, '3rfcNHYJY1ZVvWVs7j'));
    const first = await server.step(Buffer.from('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
    expect(text(first)).toBe('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    const final = await server.step(
      Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
    );
    expect(final).toMatchObject({ kind: 'success', username: 'user' });
    expect(text(final)).toBe('v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
  });

  it('reproduces the RFC 7677 §3 SCRAM-SHA-256 example', async () => {
    const accounts = await accountsWith('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    const server = new ScramServerExchange('SHA-256', options(accounts, '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0'));
    const first = await server.step(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    expect(text(first)).toBe(
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    const final = await server.step(
      Buffer.from(
        'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      ),
    );
    expect(final).toMatchObject({ kind: 'success', username: 'user' });
    expect(text(final)).toBe('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });
});

describe.each(['SHA-1', 'SHA-256'] as const)('SCRAM-%s server', (hash) => {
  async function setup() {
    const accounts = await accountsWith('secret', randomBytes(16));
    return new ScramServerExchange(hash, options(accounts));
  }

  async function run(
    server: ScramServerExchange,
    client: ScramClient,
    password = 'secret',
    tamper: { nonce?: string; binding?: string } = {},
  ) {
    const first = await server.step(client.clientFirst());
    return server.step(await client.clientFinal(text(first), password, tamper));
  }

  it('authenticates and proves the server knows the key', async () => {
    const client = new ScramClient(hash, 'user');
    const result = await run(await setup(), client);
    expect(result).toMatchObject({ kind: 'success', username: 'user' });
    expect(text(result)).toBe(`v=${client.serverSignature.toString('base64')}`);
  });

  it('prepares the username as a localpart', async () => {
    expect(await run(await setup(), new ScramClient(hash, 'USER'))).toMatchObject({ username: 'user' });
  });

  it('accepts the "y" flag, as no -PLUS mechanism is offered', async () => {
    expect(await run(await setup(), new ScramClient(hash, 'user', 'y,,'))).toMatchObject({ kind: 'success' });
  });

  it('accepts the own bare JID as authzid and refuses any other', async () => {
    const own = await run(await setup(), new ScramClient(hash, 'user', 'n,a=user@example.com,'));
    expect(own).toMatchObject({ kind: 'success' });
    const other = await run(await setup(), new ScramClient(hash, 'user', 'n,a=admin@example.com,'));
    expect(other).toMatchObject({ kind: 'failure', condition: 'invalid-authzid' });
  });

  it('refuses a wrong password with not-authorized', async () => {
    const result = await run(await setup(), new ScramClient(hash, 'user'), 'wrong');
    expect(result).toMatchObject({ kind: 'failure', condition: 'not-authorized' });
  });

  it('refuses a changed nonce and a changed channel binding', async () => {
    const client = new ScramClient(hash, 'user');
    const nonce = await run(await setup(), client, 'secret', { nonce: 'forged' });
    expect(nonce).toMatchObject({ kind: 'failure', condition: 'not-authorized' });
    const binding = await run(await setup(), client, 'secret', { binding: 'eSws' });
    expect(binding).toMatchObject({ kind: 'failure', condition: 'not-authorized' });
  });

  it('runs a full exchange for unknown users with a stable fake salt, then fails', async () => {
    const first = await (await setup()).step(new ScramClient(hash, 'ghost').clientFirst());
    const again = await (await setup()).step(new ScramClient(hash, 'ghost').clientFirst());
    const other = await (await setup()).step(new ScramClient(hash, 'phantom').clientFirst());
    const salt = (step: SaslStep) => /,s=([^,]+),i=4096$/.exec(text(step))?.[1];
    expect(salt(first)).toBeDefined();
    expect(salt(first)).toBe(salt(again));
    expect(salt(first)).not.toBe(salt(other));
    expect(Buffer.from(salt(first)!, 'base64')).toHaveLength(16);
    const result = await run(await setup(), new ScramClient(hash, 'ghost'));
    expect(result).toEqual({ kind: 'failure', condition: 'not-authorized' });
  });

  it('sends an empty challenge when the client gave no initial response', async () => {
    const server = await setup();
    const client = new ScramClient(hash, 'user');
    expect(await server.step(undefined)).toEqual({ kind: 'challenge', data: Buffer.alloc(0) });
    const first = await server.step(client.clientFirst());
    expect(await server.step(await client.clientFinal(text(first), 'secret'))).toMatchObject({
      kind: 'success',
    });
  });

  it.each([
    ['channel binding requested', 'p=tls-unique,,n=user,r=abc'],
    ['no GS2 header', 'n=user,r=abc'],
    ['an unknown GS2 flag', 'x,,n=user,r=abc'],
    ['a mandatory extension', 'n,,m=ext,n=user,r=abc'],
    ['a missing nonce', 'n,,n=user'],
    ['a bad saslname escape', 'n,,n=us=2Der,r=abc'],
    ['an empty username', 'n,,n=,r=abc'],
    ['a nonce with a comma-free but non-printable char', 'n,,n=user,r=a\u0001b'],
    ['a garbled authzid field', 'n,x=user,n=user,r=abc'],
  ])('fails the client-first message with malformed-request for %s', async (_name, message) => {
    const result = await (await setup()).step(Buffer.from(message));
    expect(result).toMatchObject({ kind: 'failure', condition: 'malformed-request' });
  });

  it('fails non-UTF-8 data with malformed-request', async () => {
    const result = await (await setup()).step(Buffer.from([0x6e, 0x2c, 0x2c, 0xff, 0xfe]));
    expect(result).toMatchObject({ kind: 'failure', condition: 'malformed-request' });
  });

  it.each([
    ['a missing proof', (r: string) => `c=biws,r=${r}`],
    ['a proof that is not base64', (r: string) => `c=biws,r=${r},p=***`],
    ['the attributes out of order', (r: string) => `r=${r},c=biws,p=AAAA`],
  ])('fails the client-final message with malformed-request for %s', async (_name, build) => {
    const server = await setup();
    const first = text(await server.step(new ScramClient(hash, 'user').clientFirst()));
    const nonce = /^r=([^,]+)/.exec(first)![1]!;
    const result = await server.step(Buffer.from(build(nonce)));
    expect(result).toMatchObject({ kind: 'failure', condition: 'malformed-request' });
  });

  it('fails with temporary-auth-failure when the store is down', async () => {
    const server = new ScramServerExchange(hash, options({ get: () => Promise.reject(new Error('down')) }));
    const result = await server.step(new ScramClient(hash, 'user').clientFirst());
    expect(result).toEqual({ kind: 'failure', condition: 'temporary-auth-failure' });
  });

  it('refuses further messages once the exchange is over', async () => {
    const server = await setup();
    const client = new ScramClient(hash, 'user');
    await run(server, client);
    expect(await server.step(Buffer.from('c=biws'))).toMatchObject({
      kind: 'failure',
      condition: 'malformed-request',
    });
  });
});
