// TLS credentials for the edge: the configured PEM files, or a self-signed certificate made on first start.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { generate } from 'selfsigned';
import { ConfigError, type Config } from '@starling/core';

export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
  /** Where they came from, for the start-up message. */
  readonly source: 'configured' | 'generated' | 'generated earlier';
  readonly certFile: string;
}

async function readPem(file: string, setting: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${file}: ${(err as Error).message}`);
  }
}

function check(cert: string, key: string, certSetting: string, keySetting: string): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new ConfigError(`${certSetting}: not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(`${keySetting}: not a PEM private key (an encrypted key is not supported)`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(`${keySetting}: the key does not belong to the certificate in ${certSetting}`);
  }
}

/**
 * Loads tls.cert/tls.key when configured; otherwise reuses or creates `<dataDir>/tls/{cert,key}.pem`,
 * a self-signed certificate for the domain (clients must be told to trust it).
 */
export async function loadTlsCredentials(config: Config): Promise<TlsCredentials> {
  if (config.tls.cert !== undefined && config.tls.key !== undefined) {
    const cert = await readPem(config.tls.cert, 'tls.cert');
    const key = await readPem(config.tls.key, 'tls.key');
    check(cert, key, 'tls.cert', 'tls.key');
    return { cert, key, source: 'configured', certFile: config.tls.cert };
  }
  const dir = join(config.dataDir, 'tls');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    check(cert, key, certFile, keyFile);
    return { cert, key, source: 'generated earlier', certFile };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const notBefore = new Date();
  const notAfter = new Date(notBefore.getTime() + 5 * 365 * 24 * 3600 * 1000);
  const pems = await generate([{ name: 'commonName', value: config.domain }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: config.domain },
          { type: 2, value: `*.${config.domain}` },
        ],
      },
    ],
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(keyFile, pems.private, { mode: 0o600 });
  await writeFile(certFile, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, source: 'generated', certFile };
}
