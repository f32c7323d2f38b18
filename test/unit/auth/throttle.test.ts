import { describe, expect, it } from 'vitest';
import { createLoginThrottle, throttleDelayMs } from '../../../src/auth/throttle.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('throttleDelayMs', () => {
  it('lets the free failures through, then doubles from 1 s up to the bound', () => {
    const delays = Array.from({ length: 14 }, (_, i) => throttleDelayMs(i + 1, 5, 300_000));
    expect(delays).toEqual([0, 0, 0, 0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]);
    expect(throttleDelayMs(10_000, 5, 300_000)).toBe(300_000);
  });

  it('never waits when throttling is off', () => {
    expect(throttleDelayMs(1_000, 0, 300_000)).toBe(0);
  });
});

describe('login throttle', () => {
  const make = (c = clock()) => ({ c, t: createLoginThrottle({ freeFailures: 3, maxDelayMs: 60_000, now: c.now }) });

  it('makes an address wait after repeated failures for one user, longer each time', () => {
    const { c, t } = make();
    for (let i = 0; i < 2; i++) t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(1_000);
    c.advance(400);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(600);
    c.advance(600);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(2_000);
  });

  it('leaves other addresses and other users of the same address alone', () => {
    const { t } = make();
    for (let i = 0; i < 10; i++) t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBeGreaterThan(0);
    expect(t.retryAfterMs('198.51.100.7', 'alice')).toBe(0);
    expect(t.retryAfterMs('192.0.2.1', 'bob')).toBe(0);
  });

  it('forgets the failures on a success', () => {
    const { t } = make();
    for (let i = 0; i < 5; i++) t.failed('192.0.2.1', 'alice');
    t.succeeded('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
  });

  it('never waits longer than the bound, and forgets after a quiet spell', () => {
    const { c, t } = make();
    for (let i = 0; i < 40; i++) t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(60_000);
    c.advance(60_000 + 60_000);
    expect(t.size).toBe(1);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    expect(t.size).toBe(0);
    t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
  });

  it('is off with zero free failures', () => {
    const c = clock();
    const t = createLoginThrottle({ freeFailures: 0, maxDelayMs: 60_000, now: c.now });
    for (let i = 0; i < 50; i++) t.failed('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    expect(t.size).toBe(0);
  });

  it('keeps a bounded number of entries, dropping the stalest', () => {
    const c = clock();
    const t = createLoginThrottle({ freeFailures: 1, maxDelayMs: 60_000, maxEntries: 3, now: c.now });
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']) t.failed(address, 'alice');
    expect(t.size).toBe(3);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    expect(t.retryAfterMs('192.0.2.4', 'alice')).toBe(1_000);
  });
});
