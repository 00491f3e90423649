// bin/starling.js runs the TypeScript sources without a build: Node's own type stripping where Node has
// it, else the esbuild hooks of bin/typescript-hooks.js. The hooks are checked here on any Node by
// registering them explicitly; the cli tests run bin/starling.js itself on each Node of the CI.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const HOOKS = new URL('../bin/typescript-hooks.js', import.meta.url).href;
const BIN = new URL('../bin/starling.js', import.meta.url).pathname;

// Types on the lines before the throw, so that a stack trace on the wrong line shows.
const FIXTURE = `interface Point {
  readonly x: number;
  readonly y: number;
}
type Pair = readonly [Point, Point];

export function span(pair: Pair): number {
  if (pair[0].x <= pair[1].x) {
    return pair[1].x - pair[0].x;
  }
  throw new Error('thrown on line 11');
}

export function make(): () => number {
  return function measure(): number {
    return span([{ x: 1, y: 2 }, { x: 4, y: 8 }]);
  };
}
`;

describe('the launcher', () => {
  let dir: string;
  let fixture: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'starling-launcher-'));
    fixture = join(dir, 'fixture.ts');
    await writeFile(fixture, FIXTURE);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads TypeScript through the hooks, names as written, stack traces on the .ts lines', () => {
    const script = [
      `import { register } from 'node:module';`,
      `register(${JSON.stringify(HOOKS)});`,
      `process.setSourceMapsEnabled(true);`,
      `const { make, span } = await import(${JSON.stringify(pathToFileURL(fixture).href)});`,
      // A function whose name a helper set afterwards (esbuild's keepNames) holds a property dictionary.
      `const measure = make();`,
      `console.log(JSON.stringify({ name: measure.name, value: measure(), fast: %HasFastProperties(measure) }));`,
      `span([{ x: 2, y: 0 }, { x: 1, y: 0 }]);`,
    ].join('\n');
    const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    const [first] = run.stdout.split('\n');
    expect(JSON.parse(first ?? '')).toEqual({ name: 'measure', value: 3, fast: true });
    expect(run.stderr).toContain('Error: thrown on line 11');
    expect(run.stderr).toContain(`at span (${fixture}:11:9)`);
    expect(run.status).not.toBe(0);
  });

  it('runs the command on this Node', () => {
    const run = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8', timeout: 15_000 });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(run.status).toBe(0);
  });
});
