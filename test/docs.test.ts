// The README's generated parts match the code: the spec table and every configuration setting.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { configSchema, ENV_SETTINGS } from '@starling/core';
import { allFeatures, withSpecTable } from '@starling/features';

const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');

function leafPaths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, inner]) =>
    leafPaths(inner, prefix === '' ? key : `${prefix}.${key}`),
  );
}

describe('README', () => {
  it('carries the spec table generated from the features (run `npm run docs`)', () => {
    // Prettier pads table cells; the content must be the same.
    const cells = (text: string): string => text.replace(/ *\| */g, '|').replace(/\|-+/g, '|-');
    expect(cells(readme)).toBe(cells(withSpecTable(readme, allFeatures)));
  });

  it('documents every configuration setting and environment variable', () => {
    const defaults = configSchema.parse({});
    const table = readme.slice(
      readme.indexOf('<!-- config:start -->'),
      readme.indexOf('<!-- config:end -->'),
    );
    for (const path of [...leafPaths(defaults), 'tls.cert', 'tls.key']) {
      const leaf = path.split('.').at(-1) ?? path;
      expect(table, `README configuration table lacks ${path}`).toMatch(new RegExp(`\`[^\`]*${leaf}\``));
    }
    for (const name of Object.keys(ENV_SETTINGS)) expect(table).toContain(name);
  });
});
