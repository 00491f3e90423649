// The README's table of supported specifications, generated from each feature's own declaration.
import type { Feature } from '@starling/core';

function specName(feature: Feature): string {
  const { rfc, xep } = feature.spec;
  if (rfc !== undefined) return `RFC ${rfc}`;
  if (xep !== undefined) return `XEP-${String(xep).padStart(4, '0')}`;
  return '';
}

function order(feature: Feature): number {
  const { rfc, xep } = feature.spec;
  if (rfc !== undefined) return rfc;
  if (xep !== undefined) return 100_000 + xep;
  return Number.MAX_SAFE_INTEGER;
}

/** A Markdown table: one row per feature that names an RFC or XEP, RFCs first, by number. */
export function specTable(features: readonly Feature[]): string {
  const rows = features
    .filter((feature) => feature.spec.rfc !== undefined || feature.spec.xep !== undefined)
    .map((feature, index) => ({ feature, index }))
    .sort((a, b) => order(a.feature) - order(b.feature) || a.index - b.index)
    .map(({ feature }) => {
      const section = feature.spec.section ?? '';
      const enabled = feature.enabled === undefined ? '' : ' (configurable)';
      return `| ${specName(feature)} | ${section} | ${feature.spec.title}${enabled} | ${feature.roles.join(', ')} |`;
    });
  return ['| spec | section | what | role |', '|---|---|---|---|', ...rows].join('\n');
}

/** Replaces the text between `<!-- specs:start -->` and `<!-- specs:end -->` with the table. */
export function withSpecTable(readme: string, features: readonly Feature[]): string {
  const start = '<!-- specs:start -->';
  const end = '<!-- specs:end -->';
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from === -1 || to < from) throw new Error('README has no specs markers');
  return `${readme.slice(0, from + start.length)}\n\n${specTable(features)}\n\n${readme.slice(to)}`;
}
