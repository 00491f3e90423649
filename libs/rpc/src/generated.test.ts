// gRPC types: the committed generated code is what the generator makes of the proto files today.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { GENERATED_DIR, generateTypes, listFiles } from './generate-types.ts';

it('matches a fresh run of proto-loader-gen-types (run `npm run proto:gen` after editing a proto)', async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'starling-rpc-'));
  try {
    const fresh = join(scratch, 'generated');
    await generateTypes(fresh);
    const files = await listFiles(fresh);
    expect(files).toContain('delivery.ts');
    expect(await listFiles(GENERATED_DIR)).toEqual(files);
    for (const file of files) {
      const committed = await readFile(join(GENERATED_DIR, file), 'utf8');
      expect(committed, file).toBe(await readFile(join(fresh, file), 'utf8'));
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
