// RFC 4616: PLAIN message parsing and verification against stored SCRAM keys.
import { describe, expect, it } from 'vitest';
import type { Account } from '@starling/ports';
import { deriveAllScramKeys } from '@starling/xmpp';
import type { SaslServerOptions } from './mechanism.ts';
import { PlainServerExchange, parsePlainMessage } from './plain-server.ts';

const account: Account = {
  username: 'juliet',
  scram: await deriveAllScramKeys('r0m30myr0m30', 4096),
  createdAt: 0,
};

const options: SaslServerOptions = {
  accounts: { get: (name) => Promise.resolve(name === 'juliet' ? account : undefined) },
  domain: 'example.com',
  iterations: 4096,
  fakeSaltKey: Buffer.from('key'),
};

function plain(authzid: string, authcid: string, password: string): Buffer {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`, 'utf8');
}

describe('parsePlainMessage', () => {
  it('splits the three fields', () => {
    expect(parsePlainMessage(plain('a', 'b', 'c'))).toEqual({ authzid: 'a', authcid: 'b', password: 'c' });
    expect(parsePlainMessage(plain('', 'b', 'p\u00e4ss'))).toEqual({
      authzid: '',
      authcid: 'b',
      password: 'p\u00e4ss',
    });
  });

  it.each([
    ['one NUL', Buffer.from('juliet\0secret')],
    ['three NULs', Buffer.from('\0juliet\0sec\0ret')],
    ['no NUL', Buffer.from('juliet')],
    ['an empty authcid', plain('', '', 'secret')],
    ['an empty password', plain('', 'juliet', '')],
    ['a field over 255 octets', plain('', 'juliet', 'x'.repeat(256))],
    ['invalid UTF-8', Buffer.from([0, 0x6a, 0, 0xff])],
  ])('rejects %s', (_name, data) => {
    expect(parsePlainMessage(data)).toBeUndefined();
  });
});

describe('PLAIN server', () => {
  const step = (data: Buffer | undefined) => new PlainServerExchange(options).step(data);

  it('authenticates with the right password', async () => {
    expect(await step(plain('', 'juliet', 'r0m30myr0m30'))).toEqual({ kind: 'success', username: 'juliet' });
  });

  it('prepares the authcid and accepts user@domain from older clients', async () => {
    expect(await step(plain('', 'Juliet', 'r0m30myr0m30'))).toMatchObject({ kind: 'success' });
    expect(await step(plain('', 'juliet@example.com', 'r0m30myr0m30'))).toMatchObject({ kind: 'success' });
    expect(await step(plain('', 'juliet@elsewhere.org', 'r0m30myr0m30'))).toMatchObject({
      kind: 'failure',
      condition: 'not-authorized',
    });
  });

  it('accepts an empty authzid or the own bare JID, else invalid-authzid', async () => {
    expect(await step(plain('juliet@example.com', 'juliet', 'r0m30myr0m30'))).toMatchObject({
      kind: 'success',
    });
    for (const authzid of ['romeo@example.com', 'juliet@example.com/balcony', 'example.com']) {
      expect(await step(plain(authzid, 'juliet', 'r0m30myr0m30'))).toEqual({
        kind: 'failure',
        condition: 'invalid-authzid',
      });
    }
  });

  it('does not reveal a wrong authzid before the password was checked', async () => {
    expect(await step(plain('romeo@example.com', 'juliet', 'wrong'))).toMatchObject({
      condition: 'not-authorized',
    });
  });

  it('refuses a wrong password and an unknown user alike', async () => {
    expect(await step(plain('', 'juliet', 'wrong'))).toEqual({
      kind: 'failure',
      condition: 'not-authorized',
    });
    expect(await step(plain('', 'nobody', 'r0m30myr0m30'))).toEqual({
      kind: 'failure',
      condition: 'not-authorized',
    });
  });

  it('fails a malformed message with malformed-request', async () => {
    expect(await step(Buffer.from('juliet'))).toMatchObject({ condition: 'malformed-request' });
    expect(await step(Buffer.alloc(0))).toMatchObject({ condition: 'malformed-request' });
  });

  it('challenges when there was no initial response, then takes the response', async () => {
    const exchange = new PlainServerExchange(options);
    expect(await exchange.step(undefined)).toEqual({ kind: 'challenge', data: Buffer.alloc(0) });
    expect(await exchange.step(plain('', 'juliet', 'r0m30myr0m30'))).toMatchObject({ kind: 'success' });
    expect(await exchange.step(plain('', 'juliet', 'r0m30myr0m30'))).toMatchObject({
      condition: 'malformed-request',
    });
  });

  it('fails with temporary-auth-failure when the store is down', async () => {
    const down = new PlainServerExchange({
      ...options,
      accounts: { get: () => Promise.reject(new Error('x')) },
    });
    expect(await down.step(plain('', 'juliet', 'r0m30myr0m30'))).toEqual({
      kind: 'failure',
      condition: 'temporary-auth-failure',
    });
  });
});
