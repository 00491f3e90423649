// A SCRAM client (RFC 5802, RFC 7677) written for the tests from the RFC text, independent of the server's code.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { RawClient } from '../harness/index.ts';

type Hash = 'sha1' | 'sha256';

const b64 = (data: string | Buffer): string => Buffer.from(data).toString('base64');

/** Runs the exchange on `client`; resolves with the server's final element (`<success/>` or `<failure/>`). */
export async function scramLogin(
  client: RawClient,
  mechanism: 'SCRAM-SHA-1' | 'SCRAM-SHA-256',
  username: string,
  password: string,
): Promise<string> {
  const hash: Hash = mechanism === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
  const length = hash === 'sha1' ? 20 : 32;
  const clientNonce = randomBytes(18).toString('base64');
  const clientFirstBare = `n=${username.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${clientNonce}`;
  client.write(
    `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mechanism}'>${b64(`n,,${clientFirstBare}`)}</auth>`,
  );
  const challenge = await client.read(/<challenge[^>]*>[^<]*<\/challenge>|<failure[\s\S]*?<\/failure>/);
  if (challenge.includes('<failure')) return challenge;
  const serverFirst = Buffer.from(/>([^<]*)</.exec(challenge)?.[1] ?? '', 'base64').toString();
  const fields = new Map(serverFirst.split(',').map((part) => [part.slice(0, 1), part.slice(2)]));
  const nonce = fields.get('r') ?? '';
  if (!nonce.startsWith(clientNonce)) throw new Error(`server nonce does not extend ours: ${serverFirst}`);
  const salt = Buffer.from(fields.get('s') ?? '', 'base64');
  const iterations = Number(fields.get('i'));
  const salted = pbkdf2Sync(password, salt, iterations, length, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const clientFinalNoProof = `c=${b64('n,,')},r=${nonce}`;
  const authMessage = `${clientFirstBare},${serverFirst},${clientFinalNoProof}`;
  const signature = createHmac(hash, storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ (signature[i] ?? 0)));
  client.write(
    `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${b64(`${clientFinalNoProof},p=${proof.toString('base64')}`)}</response>`,
  );
  const final = await client.read(
    /<success[^>]*\/>|<success[^>]*>[^<]*<\/success>|<failure[\s\S]*?<\/failure>/,
  );
  if (final.includes('<success')) {
    const serverKey = createHmac(hash, salted).update('Server Key').digest();
    const expected = createHmac(hash, serverKey).update(authMessage).digest('base64');
    const content = Buffer.from(/>([^<]*)</.exec(final)?.[1] ?? '', 'base64').toString();
    if (content !== `v=${expected}`) throw new Error(`server signature wrong: ${content}`);
  }
  return final;
}
