// Failed-login throttling: delays past the threshold, blocks, expiry and bounded memory, on a fake clock.
import { describe, expect, it } from 'vitest';
import { LoginThrottle } from './login-throttle.ts';

const policy = { failuresBeforeDelay: 3, failureDelayMs: 1000, failuresBeforeBlock: 6, blockSeconds: 300 };

function setup(maxEntries?: number) {
  const clock = { now: 1_000_000 };
  const throttle = new LoginThrottle(policy, () => clock.now, maxEntries);
  return { clock, throttle };
}

describe('LoginThrottle', () => {
  it('answers the first failures at once, then waits longer for each one', () => {
    const { throttle } = setup();
    const delays = [1, 2, 3, 4, 5].map(() => throttle.recordFailure('192.0.2.1'));
    expect(delays).toEqual([0, 0, 0, 1000, 2000]);
    expect(throttle.blockedFor('192.0.2.1')).toBe(0);
  });

  it('blocks an address at the block threshold for blockSeconds', () => {
    const { clock, throttle } = setup();
    for (let i = 0; i < 6; i++) throttle.recordFailure('192.0.2.1');
    expect(throttle.blockedFor('192.0.2.1')).toBe(300_000);
    clock.now += 299_999;
    expect(throttle.blockedFor('192.0.2.1')).toBe(1);
    clock.now += 1;
    expect(throttle.blockedFor('192.0.2.1')).toBe(0);
    expect(throttle.recordFailure('192.0.2.1')).toBe(0);
  });

  it('keeps addresses apart', () => {
    const { throttle } = setup();
    for (let i = 0; i < 6; i++) throttle.recordFailure('192.0.2.1');
    expect(throttle.blockedFor('192.0.2.2')).toBe(0);
    expect(throttle.recordFailure('192.0.2.2')).toBe(0);
  });

  it('forgets failures after blockSeconds without one', () => {
    const { clock, throttle } = setup();
    for (let i = 0; i < 4; i++) throttle.recordFailure('192.0.2.1');
    clock.now += 300_000;
    expect(throttle.recordFailure('192.0.2.1')).toBe(0);
  });

  it('clears the record on a successful login', () => {
    const { throttle } = setup();
    for (let i = 0; i < 5; i++) throttle.recordFailure('192.0.2.1');
    throttle.recordSuccess('192.0.2.1');
    expect(throttle.recordFailure('192.0.2.1')).toBe(0);
  });

  it('bounds memory by forgetting the least recently failing addresses', () => {
    const { throttle } = setup(3);
    for (let i = 0; i < 6; i++) throttle.recordFailure('198.51.100.1');
    throttle.recordFailure('198.51.100.2');
    throttle.recordFailure('198.51.100.3');
    throttle.recordFailure('198.51.100.4');
    expect(throttle.size).toBe(3);
    expect(throttle.blockedFor('198.51.100.1')).toBe(0);
  });
});
