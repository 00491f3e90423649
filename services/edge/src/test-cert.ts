// Test support: a throwaway self-signed certificate for the TLS listeners, made once per test file.
import { generate } from 'selfsigned';

let pending: Promise<{ cert: string; key: string }> | undefined;

/** A self-signed certificate for localhost; shared by the tests of one process. */
export function testCertificate(): Promise<{ cert: string; key: string }> {
  pending ??= generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
  }).then((pems) => ({ cert: pems.cert, key: pems.private }));
  return pending;
}
