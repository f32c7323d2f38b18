import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLoginThrottle, throttleDelayMs, type LoginThrottle } from '../../../src/auth/throttle.js';

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

type Clock = ReturnType<typeof clock>;

/** One wrong password, checked once the throttle lets it: waits are waited out on the fake clock. */
function fail(t: LoginThrottle, c: Clock, address: string, user = 'alice'): void {
  let wait = t.begin(address, user);
  if (wait > 0) {
    c.advance(wait);
    wait = t.begin(address, user);
  }
  expect(wait).toBe(0);
  t.finish(address, user, 'failed');
}

/** Collects garbage: heap figures then count what is alive only. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('login throttle', () => {
  const make = (c = clock()) => ({ c, t: createLoginThrottle({ freeFailures: 3, maxDelayMs: 60_000, now: c.now }) });

  it('makes an address wait after repeated failures for one user, longer each time', () => {
    const { c, t } = make();
    for (let i = 0; i < 2; i++) fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(1_000);
    expect(t.begin('192.0.2.1', 'alice')).toBe(1_000);
    c.advance(400);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(600);
    c.advance(600);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(2_000);
  });

  it('leaves other addresses and other users of the same address alone', () => {
    const { c, t } = make();
    for (let i = 0; i < 10; i++) fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBeGreaterThan(0);
    expect(t.retryAfterMs('198.51.100.7', 'alice')).toBe(0);
    expect(t.retryAfterMs('192.0.2.1', 'bob')).toBe(0);
  });

  it('forgets the failures on a success', () => {
    const { c, t } = make();
    for (let i = 0; i < 5; i++) fail(t, c, '192.0.2.1');
    t.succeeded('192.0.2.1', 'alice');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
  });

  it('never waits longer than the bound, and forgets after a quiet spell', () => {
    const { c, t } = make();
    for (let i = 0; i < 12; i++) fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(60_000);
    c.advance(60_000 + 60_000);
    expect(t.size).toBe(1);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    expect(t.size).toBe(0);
    fail(t, c, '192.0.2.1');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
  });

  it('is off with zero free failures', () => {
    const c = clock();
    const t = createLoginThrottle({ freeFailures: 0, maxDelayMs: 60_000, now: c.now });
    for (let i = 0; i < 50; i++) fail(t, c, '192.0.2.1');
    for (let i = 0; i < 50; i++) expect(t.begin('192.0.2.1', 'alice')).toBe(0);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    expect(t.size).toBe(0);
  });

  it('keeps a bounded number of entries, dropping the stalest', () => {
    const c = clock();
    const t = createLoginThrottle({ freeFailures: 1, maxDelayMs: 60_000, maxEntries: 3, now: c.now });
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']) fail(t, c, address);
    expect(t.size).toBe(3);
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(0);
    expect(t.retryAfterMs('192.0.2.4', 'alice')).toBe(1_000);
  });

  it('counts checks in flight: no more run at once than failures are free, then one at a time', () => {
    const { c, t } = make();
    // Three free failures: three concurrent guesses may be checked, the fourth must wait.
    expect([1, 2, 3].map(() => t.begin('192.0.2.1', 'alice'))).toEqual([0, 0, 0]);
    expect(t.begin('192.0.2.1', 'alice')).toBe(1_000);
    // Another user, or the same user from elsewhere, is not held up.
    expect(t.begin('192.0.2.1', 'bob')).toBe(0);
    expect(t.begin('198.51.100.7', 'alice')).toBe(0);
    // One ends well and forgets it all; the others' failures still count when they end.
    t.finish('192.0.2.1', 'alice', 'failed');
    t.finish('192.0.2.1', 'alice', 'failed');
    expect(t.begin('192.0.2.1', 'alice')).toBe(1_000); // 2 failed + 1 running = the 3 free ones
    t.finish('192.0.2.1', 'alice', 'failed');
    expect(t.retryAfterMs('192.0.2.1', 'alice')).toBe(1_000);
    c.advance(1_000);
    // Past the free failures, one check at a time.
    expect(t.begin('192.0.2.1', 'alice')).toBe(0);
    expect(t.begin('192.0.2.1', 'alice')).toBe(1_000);
    t.finish('192.0.2.1', 'alice', 'abandoned');
    expect(t.begin('192.0.2.1', 'alice')).toBe(0);
  });

  it('lets 40 concurrent guesses through no more often than the free failures allow', () => {
    const { c, t } = make();
    let checked = 0;
    for (let round = 0; round < 5; round++) {
      const begun = Array.from({ length: 40 }, () => t.begin('192.0.2.1', 'alice')).filter((wait) => wait === 0).length;
      checked += begun;
      for (let i = 0; i < begun; i++) t.finish('192.0.2.1', 'alice', 'failed');
      c.advance(t.retryAfterMs('192.0.2.1', 'alice'));
    }
    // 3 free, then one per wait.
    expect(checked).toBe(3 + 4);
  });

  it('throttles an IPv6 client by its /64, and an IPv4-mapped address as the IPv4 one', () => {
    const { c, t } = make();
    const prefix = '2001:db8:1:2';
    for (let i = 0; i < 3; i++) fail(t, c, `${prefix}::${(i + 1).toString(16)}`);
    expect(t.retryAfterMs(`${prefix}:ffff:ffff:ffff:ffff`, 'alice')).toBe(1_000);
    expect(t.retryAfterMs('2001:0db8:0001:0002:0:0:0:9', 'alice')).toBe(1_000);
    expect(t.retryAfterMs('2001:db8:1:3::1', 'alice')).toBe(0);
    for (let i = 0; i < 3; i++) fail(t, c, '::ffff:192.0.2.9');
    expect(t.retryAfterMs('192.0.2.9', 'alice')).toBe(1_000);
  });

  it('holds as little for a 24,000-character user name as for a short one: the table is bounded in bytes', () => {
    const c = clock();
    const entries = 20_000;
    const t = createLoginThrottle({ freeFailures: 5, maxDelayMs: 60_000, maxEntries: entries, now: c.now });
    const long = 'x'.repeat(24_000);
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    // Each name a new string (the prefix makes it one), as each request's header would be.
    for (let i = 0; i < entries * 1.5; i++) fail(t, c, '192.0.2.1', `${i}-${long}`);
    collectGarbage();
    const grew = process.memoryUsage().heapUsed - before;
    expect(t.size).toBe(entries);
    // Kept whole, the names alone would be 480 MB; hashed, an entry is ~150 bytes.
    expect(grew / entries).toBeLessThan(400);
  });
});
