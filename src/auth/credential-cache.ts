// Remembering recent successful logins, so a docker push (dozens of requests, many in parallel,
// all with the same Authorization header) costs one bcrypt verification instead of dozens.
//
// Entries are keyed by a SHA-256 of a random key that lives only in this process followed by the
// whole header: neither the header nor the password is ever stored, and the keys are useless
// outside it. (Not an HMAC: nothing is ever checked against such a key, only looked up by it, and
// the one-shot hash costs a sixth of an HMAC on every request.)

import * as crypto from 'node:crypto';

export interface CredentialCacheOptions {
  /** Most entries kept; the least recently used goes first. Default 1024. */
  maxEntries?: number;
  /** How long a success is trusted without verifying again. Default 5 minutes. */
  ttlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface CredentialCache {
  /** The user a header was verified for, if that happened within the TTL. */
  get(authorization: string): string | undefined;
  /** Records a successful verification of this header for this user. */
  set(authorization: string, user: string): void;
  /**
   * Runs `verify` unless a verification of the same header is already running, in which case
   * its outcome is shared. A clear() while it runs detaches it: later callers start afresh.
   */
  share<T>(authorization: string, verify: () => Promise<T>): Promise<T>;
  /** Whether a verification of this header is running now (a call to share() would join it). */
  running(authorization: string): boolean;
  /** Forgets every entry and every verification in flight. */
  clear(): void;
  readonly size: number;
}

export function createCredentialCache(options: CredentialCacheOptions = {}): CredentialCache {
  const maxEntries = Math.max(0, options.maxEntries ?? 1024);
  const ttlMs = Math.max(0, options.ttlMs ?? 5 * 60_000);
  const now = options.now ?? Date.now;
  const secret = crypto.randomBytes(32).toString('base64');
  // Map iteration order is insertion order: re-inserting on use keeps the oldest first.
  const entries = new Map<string, { user: string; expires: number }>();
  let inFlight = new Map<string, Promise<unknown>>();

  const keyOf = (authorization: string): string => sha256(secret + authorization);

  function get(authorization: string): string | undefined {
    const key = keyOf(authorization);
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    entries.delete(key);
    if (entry.expires <= now()) return undefined;
    entries.set(key, entry);
    return entry.user;
  }

  function set(authorization: string, user: string): void {
    if (maxEntries === 0 || ttlMs === 0) return;
    const key = keyOf(authorization);
    entries.delete(key);
    entries.set(key, { user, expires: now() + ttlMs });
    for (const oldest of entries.keys()) {
      if (entries.size <= maxEntries) break;
      entries.delete(oldest);
    }
  }

  function share<T>(authorization: string, verify: () => Promise<T>): Promise<T> {
    const key = keyOf(authorization);
    const running = inFlight.get(key);
    if (running !== undefined) return running as Promise<T>;
    const table = inFlight;
    // Wrapped so that a synchronous throw from verify() still reaches the caller as a rejection.
    const promise = new Promise<T>((resolve) => resolve(verify())).finally(() => {
      if (table.get(key) === promise) table.delete(key);
    });
    table.set(key, promise);
    return promise;
  }

  function running(authorization: string): boolean {
    return inFlight.size > 0 && inFlight.has(keyOf(authorization));
  }

  function clear(): void {
    entries.clear();
    // A fresh table, so a verification started before the clear cannot be joined after it.
    inFlight = new Map();
  }

  return {
    get,
    set,
    share,
    running,
    clear,
    get size() {
      return entries.size;
    },
  };
}

/** crypto.hash (Node 20.12 and later), else the same digest through createHash. */
const sha256: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'base64')
    : (text) => crypto.createHash('sha256').update(text).digest('base64');
