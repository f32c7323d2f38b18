import { describe, expect, it } from 'vitest';
import { createCredentialCache } from '../../../src/auth/credential-cache.js';
import { basic } from '../../helpers/htpasswd-fixtures.js';

const A = basic('alice', 'a-password');
const B = basic('bob', 'b-password');
const C = basic('carol', 'c-password');

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('credential cache: remembered successes', () => {
  it('answers for exactly the header it was given', () => {
    const cache = createCredentialCache();
    cache.set(A, 'alice');
    expect(cache.get(A)).toBe('alice');
    expect(cache.get(B)).toBeUndefined();
    expect(cache.get(basic('alice', 'a-password!'))).toBeUndefined();
    expect(cache.get(A.replace('Basic', 'basic'))).toBeUndefined();
  });

  it('forgets a success once the TTL has passed', () => {
    const t = clock();
    const cache = createCredentialCache({ ttlMs: 1000, now: t.now });
    cache.set(A, 'alice');
    t.advance(999);
    expect(cache.get(A)).toBe('alice');
    t.advance(1);
    expect(cache.get(A)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('counts the TTL from the verification, not from the last use', () => {
    const t = clock();
    const cache = createCredentialCache({ ttlMs: 1000, now: t.now });
    cache.set(A, 'alice');
    for (let i = 0; i < 3; i++) {
      t.advance(400);
      cache.get(A);
    }
    expect(cache.get(A)).toBeUndefined();
  });

  it('evicts the least recently used entry when full', () => {
    const cache = createCredentialCache({ maxEntries: 2 });
    cache.set(A, 'alice');
    cache.set(B, 'bob');
    expect(cache.get(A)).toBe('alice'); // A is now the most recently used
    cache.set(C, 'carol');
    expect(cache.size).toBe(2);
    expect(cache.get(B)).toBeUndefined();
    expect(cache.get(A)).toBe('alice');
    expect(cache.get(C)).toBe('carol');
  });

  it('remembers nothing when sized or timed to zero', () => {
    for (const options of [{ maxEntries: 0 }, { ttlMs: 0 }]) {
      const cache = createCredentialCache(options);
      cache.set(A, 'alice');
      expect(cache.get(A)).toBeUndefined();
    }
  });

  it('forgets everything on clear()', () => {
    const cache = createCredentialCache();
    cache.set(A, 'alice');
    cache.set(B, 'bob');
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get(A)).toBeUndefined();
  });
});

describe('credential cache: shared verifications', () => {
  it('runs one verification for concurrent checks of the same header', async () => {
    const cache = createCredentialCache();
    const gate = deferred<string>();
    let runs = 0;
    const verify = () => {
      runs++;
      return gate.promise;
    };
    const results = [cache.share(A, verify), cache.share(A, verify), cache.share(A, verify)];
    const other = cache.share(B, async () => 'bob');
    gate.resolve('alice');
    expect(await Promise.all(results)).toEqual(['alice', 'alice', 'alice']);
    expect(await other).toBe('bob');
    expect(runs).toBe(1);
  });

  it('verifies again once the shared verification has finished', async () => {
    const cache = createCredentialCache();
    let runs = 0;
    await cache.share(A, async () => ++runs);
    await cache.share(A, async () => ++runs);
    expect(runs).toBe(2);
  });

  it('shares a failure, then lets the next check try again', async () => {
    const cache = createCredentialCache();
    const gate = deferred<string>();
    const first = cache.share(A, () => gate.promise);
    const second = cache.share(A, async () => 'never called');
    gate.reject(new Error('busy'));
    await expect(first).rejects.toThrow('busy');
    await expect(second).rejects.toThrow('busy');
    expect(await cache.share(A, async () => 'retried')).toBe('retried');
  });

  it('turns a verification that throws synchronously into a rejection', async () => {
    const cache = createCredentialCache();
    await expect(
      cache.share(A, () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(await cache.share(A, async () => 'fine')).toBe('fine');
  });

  it('does not let checks after clear() join a verification started before it', async () => {
    const cache = createCredentialCache();
    const before = deferred<string>();
    const old = cache.share(A, () => before.promise);
    cache.clear();
    const fresh = cache.share(A, async () => 'new users');
    expect(await fresh).toBe('new users');
    before.resolve('old users');
    expect(await old).toBe('old users');
    // The old verification finishing must not evict a newer one that is running.
    const gate = deferred<string>();
    const running = cache.share(A, () => gate.promise);
    const joined = cache.share(A, async () => 'should join instead');
    gate.resolve('joined');
    expect(await Promise.all([running, joined])).toEqual(['joined', 'joined']);
  });
});
