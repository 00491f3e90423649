// RFC 5802 §5 and RFC 7677 §3 example exchanges: the keys derived here must reproduce their proofs.
import { describe, expect, it } from 'vitest';
import {
  deriveScramKeys,
  digest,
  hmac,
  saltedPassword,
  verifyPassword,
  xorBuffers,
  type ScramHashName,
} from './scram.ts';

const vectors: {
  hash: ScramHashName;
  salt: string;
  iterations: number;
  authMessage: string;
  proof: string;
  signature: string;
}[] = [
  {
    hash: 'SHA-1',
    salt: 'QSXCR+Q6sek8bf92',
    iterations: 4096,
    authMessage:
      'n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j',
    proof: 'v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
    signature: 'rmF9pqV8S7suAoZWja4dJRkFsKQ=',
  },
  {
    hash: 'SHA-256',
    salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
    iterations: 4096,
    authMessage:
      'n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    proof: 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    signature: '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  },
];

describe('SCRAM key derivation', () => {
  for (const v of vectors) {
    it(`reproduces the ${v.hash} example of the RFC`, async () => {
      const keys = await deriveScramKeys(v.hash, 'pencil', v.iterations, Buffer.from(v.salt, 'base64'));
      const salted = await saltedPassword(v.hash, 'pencil', Buffer.from(v.salt, 'base64'), v.iterations);
      const clientKey = hmac(v.hash, salted, 'Client Key');
      const clientSignature = hmac(v.hash, Buffer.from(keys.storedKey, 'base64'), v.authMessage);
      expect(xorBuffers(clientKey, clientSignature).toString('base64')).toBe(v.proof);
      expect(hmac(v.hash, Buffer.from(keys.serverKey, 'base64'), v.authMessage).toString('base64')).toBe(
        v.signature,
      );
      expect(digest(v.hash, clientKey).toString('base64')).toBe(keys.storedKey);
    });
  }

  it('verifies the right password and rejects a wrong one', async () => {
    const keys = await deriveScramKeys('SHA-256', 'correct horse', 4096);
    expect(await verifyPassword('SHA-256', 'correct horse', keys)).toBe(true);
    expect(await verifyPassword('SHA-256', 'Correct horse', keys)).toBe(false);
  });
});
