// Command-line values the benchmark scripts share.

/** `--name`'s value as a whole number ≥ 1, or `fallback` when not given; anything else is an error. */
export function wholeNumber(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} takes a positive whole number, not "${value}"`);
  return n;
}
