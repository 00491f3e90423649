// Rewrites the generated parts of README.md from the code (`npm run docs`).
import { readFile, writeFile } from 'node:fs/promises';
import { format, resolveConfig } from 'prettier';
import { allFeatures, withSpecTable } from '@starling/features';

const file = new URL('../README.md', import.meta.url);
const before = await readFile(file, 'utf8');
const after = await format(withSpecTable(before, allFeatures), {
  ...(await resolveConfig(file.pathname)),
  filepath: file.pathname,
});
if (after !== before) await writeFile(file, after);
process.stdout.write(after === before ? 'README.md is current\n' : 'README.md updated\n');
