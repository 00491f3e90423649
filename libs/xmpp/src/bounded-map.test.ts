// The bounded map: a fixed number of entries, the one added longest ago forgotten first.
import { describe, expect, it } from 'vitest';
import { BoundedMap } from './bounded-map.ts';

describe('BoundedMap', () => {
  it('forgets the key added longest ago once full, and only that one', () => {
    const map = new BoundedMap<string, number>(3);
    map.set('a', 1).set('b', 2).set('c', 3);
    map.set('d', 4);
    expect(map.has('a')).toBe(false);
    expect([map.get('b'), map.get('c'), map.get('d')]).toEqual([2, 3, 4]);
    expect(map.size).toBe(3);
    map.set('e', 5);
    expect(map.has('b')).toBe(false);
    expect(map.size).toBe(3);
  });

  it('keeps the place of a key set again, with its new value', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2).set('a', 10);
    expect(map.get('a')).toBe(10);
    // 'a' was added first, so it goes first.
    map.set('c', 3);
    expect(map.has('a')).toBe(false);
    expect(map.get('b')).toBe(2);
  });

  it('never holds more than its capacity, whatever is deleted and added again', () => {
    const map = new BoundedMap<number, number>(50);
    // A fixed sequence mixing adds, re-adds and deletes.
    let x = 7;
    for (let i = 0; i < 20_000; i += 1) {
      x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
      const key = x % 120;
      if (x % 5 === 0) map.delete(key);
      else map.set(key, i);
      expect(map.size).toBeLessThanOrEqual(50);
    }
    expect(map.size).toBeGreaterThan(0);
  });

  it('adds a key only when absent, and evicts as set does', () => {
    const map = new BoundedMap<string, number>(2);
    expect(map.add('a', 1)).toBe(true);
    expect(map.add('a', 10)).toBe(false);
    expect(map.get('a')).toBe(1);
    expect(map.add('b', 2)).toBe(true);
    expect(map.add('c', 3)).toBe(true);
    expect(map.has('a')).toBe(false);
    expect([map.get('b'), map.get('c'), map.size]).toEqual([2, 3, 2]);
    // Forgotten, it is new again.
    expect(map.add('a', 4)).toBe(true);
    expect(map.has('b')).toBe(false);
  });

  it('after a delete, the key is gone and may be added again', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1);
    expect(map.delete('a')).toBe(true);
    expect(map.delete('a')).toBe(false);
    expect(map.get('a')).toBeUndefined();
    map.set('a', 2);
    expect([map.get('a'), map.size]).toEqual([2, 1]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
    expect(() => new BoundedMap(2.5)).toThrow(RangeError);
  });
});
