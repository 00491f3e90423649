// RFC 5802 (SCRAM) and RFC 7677 (SCRAM-SHA-256): the key derivation shared by SASL, the CLI and registration.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

export type ScramHashName = 'SHA-1' | 'SHA-256';

const NODE_HASH: Readonly<Record<ScramHashName, { name: string; length: number }>> = {
  'SHA-1': { name: 'sha1', length: 20 },
  'SHA-256': { name: 'sha256', length: 32 },
};

export interface ScramKeys {
  /** base64 */
  readonly salt: string;
  readonly iterations: number;
  /** base64 H(ClientKey) */
  readonly storedKey: string;
  /** base64 HMAC(SaltedPassword, "Server Key") */
  readonly serverKey: string;
}

export function hmac(hash: ScramHashName, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(NODE_HASH[hash].name, key).update(data).digest();
}

export function digest(hash: ScramHashName, data: Buffer): Buffer {
  return createHash(NODE_HASH[hash].name).update(data).digest();
}

/** Hi() of RFC 5802 §2.2: PBKDF2 with HMAC over the hash. */
export function saltedPassword(
  hash: ScramHashName,
  password: string,
  salt: Buffer,
  iterations: number,
): Promise<Buffer> {
  return pbkdf2Async(password, salt, iterations, NODE_HASH[hash].length, NODE_HASH[hash].name);
}

/** The stored and server keys for `password` (RFC 5802 §3). The password itself is never kept. */
export async function deriveScramKeys(
  hash: ScramHashName,
  password: string,
  iterations: number,
  salt: Buffer = randomBytes(16),
): Promise<ScramKeys> {
  const salted = await saltedPassword(hash, password, salt, iterations);
  const clientKey = hmac(hash, salted, 'Client Key');
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: digest(hash, clientKey).toString('base64'),
    serverKey: hmac(hash, salted, 'Server Key').toString('base64'),
  };
}

/** Credentials for every supported hash, each with its own salt. */
export async function deriveAllScramKeys(
  password: string,
  iterations: number,
): Promise<Record<ScramHashName, ScramKeys>> {
  const [sha1, sha256] = await Promise.all([
    deriveScramKeys('SHA-1', password, iterations),
    deriveScramKeys('SHA-256', password, iterations),
  ]);
  return { 'SHA-1': sha1, 'SHA-256': sha256 };
}

/** Checks a clear-text password (SASL PLAIN) against stored keys, in constant time. */
export async function verifyPassword(
  hash: ScramHashName,
  password: string,
  keys: ScramKeys,
): Promise<boolean> {
  const salted = await saltedPassword(hash, password, Buffer.from(keys.salt, 'base64'), keys.iterations);
  const storedKey = digest(hash, hmac(hash, salted, 'Client Key'));
  const expected = Buffer.from(keys.storedKey, 'base64');
  return expected.length === storedKey.length && timingSafeEqual(expected, storedKey);
}

export function xorBuffers(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}
