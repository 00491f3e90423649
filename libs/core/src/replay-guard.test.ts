// The replay guard: each id once, within a bounded window of recent ids.
import { describe, expect, it } from 'vitest';
import { ReplayGuard } from './replay-guard.ts';

describe('ReplayGuard', () => {
  it('admits an id once', () => {
    const guard = new ReplayGuard(3);
    expect(guard.admit('a')).toBe(true);
    expect(guard.admit('a')).toBe(false);
    expect(guard.admit('b')).toBe(true);
  });

  it('forgets the oldest id beyond its capacity, and only that one', () => {
    const guard = new ReplayGuard(2);
    guard.admit('a');
    guard.admit('b');
    guard.admit('c');
    expect(guard.admit('b')).toBe(false);
    expect(guard.admit('c')).toBe(false);
    expect(guard.admit('a')).toBe(true);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new ReplayGuard(0)).toThrow(RangeError);
    expect(() => new ReplayGuard(1.5)).toThrow(RangeError);
  });
});
