// Module hooks that load Starling's TypeScript sources: esbuild removes the types, file by file. Names are
// left as written (no `keepNames` helper on every named function, which costs memory on each closure
// made per connection), and an inline source map keeps stack traces on the lines of the .ts file.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { stop, transform } from 'esbuild';

// What tsconfig.json sets that changes the emitted JavaScript.
const TSCONFIG = { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } };

// esbuild compiles in a child process of its own (about 17 MB); once the sources are loaded it has
// nothing left to do, so it stops after a quiet second and starts again for a file loaded later.
const IDLE_MS = 1000;
let idle;
let compiling = 0;

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !(url.endsWith('.ts') || url.endsWith('.mts'))) {
    return nextLoad(url, context);
  }
  clearTimeout(idle);
  compiling += 1;
  const file = fileURLToPath(url);
  let code;
  try {
    ({ code } = await transform(await readFile(file, 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: `node${process.versions.node}`,
      sourcefile: file,
      sourcemap: 'inline',
      sourcesContent: false,
      tsconfigRaw: TSCONFIG,
    }));
  } finally {
    compiling -= 1;
    if (compiling === 0) idle = setTimeout(() => void stop(), IDLE_MS);
  }
  return { format: 'module', source: code, shortCircuit: true };
}
