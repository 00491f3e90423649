// One self-signed certificate (EC P-256, as Starling makes for itself) shared by every server compared.
import { join } from 'node:path';
import { loadTlsCredentials } from '@starling/all-in-one';
import { parseConfig } from '@starling/core';

export async function benchCertificate(dir: string, domain: string): Promise<{ cert: string; key: string }> {
  const { cert, key } = await loadTlsCredentials(parseConfig({ domain, dataDir: join(dir, 'shared') }));
  return { cert, key };
}
