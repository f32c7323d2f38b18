// Slowing down password guessing: repeated failed logins for one user from one address wait an
// exponentially growing time (bounded) before the next attempt is even checked. Keyed by address
// *and* user, so a guesser elsewhere can never lock a real user out, and a success clears it.
//
// Per process: with --workers N, an address's connections may land on different processes, each
// counting on its own; the bound on guesses per second is then N times as high, still far below
// what an unthrottled bcrypt check allows.

export interface ThrottleOptions {
  /** Failures allowed before any wait; 0 turns throttling off. */
  readonly freeFailures: number;
  /** Longest wait, in ms. */
  readonly maxDelayMs: number;
  /** Addresses and users tracked at once; the least recently failed are forgotten first. */
  readonly maxEntries?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export interface LoginThrottle {
  /** Milliseconds this address must still wait before a login for this user is checked; 0: go ahead. */
  retryAfterMs(address: string, user: string): number;
  /** Records a failed check (wrong password or unknown user). */
  failed(address: string, user: string): void;
  /** Records a success, which forgets the failures. */
  succeeded(address: string, user: string): void;
  readonly size: number;
}

interface Entry {
  failures: number;
  /** No check before this time. */
  until: number;
  /** The entry is forgotten once this time passes without a new failure. */
  expires: number;
}

const FIRST_DELAY_MS = 1_000;

/** The wait after `failures` failures: none for the free ones, then 1 s, 2 s, 4 s, ... up to maxDelayMs. */
export function throttleDelayMs(failures: number, freeFailures: number, maxDelayMs: number): number {
  if (freeFailures <= 0 || failures < freeFailures) return 0;
  const doublings = Math.min(failures - freeFailures, 30);
  return Math.min(maxDelayMs, FIRST_DELAY_MS * 2 ** doublings);
}

export function createLoginThrottle(options: ThrottleOptions): LoginThrottle {
  const { freeFailures, maxDelayMs } = options;
  const maxEntries = Math.max(1, options.maxEntries ?? 100_000);
  const now = options.now ?? Date.now;
  // Map order is insertion order: re-inserting on each failure keeps the stalest first.
  const entries = new Map<string, Entry>();
  // A NUL cannot occur in an address, and a user name with one never parses.
  const keyOf = (address: string, user: string) => `${address}\u0000${user}`;

  function live(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (entry !== undefined && entry.expires <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  return {
    retryAfterMs(address, user) {
      if (entries.size === 0) return 0;
      const entry = live(keyOf(address, user));
      return entry === undefined ? 0 : Math.max(0, entry.until - now());
    },
    failed(address, user) {
      if (freeFailures <= 0) return;
      const key = keyOf(address, user);
      const failures = (live(key)?.failures ?? 0) + 1;
      const delay = throttleDelayMs(failures, freeFailures, maxDelayMs);
      const at = now();
      entries.delete(key);
      // Forgotten after a quiet spell as long as the longest wait: a user who mistyped a few
      // times last week starts afresh.
      entries.set(key, { failures, until: at + delay, expires: at + delay + Math.max(maxDelayMs, FIRST_DELAY_MS) });
      for (const stalest of entries.keys()) {
        if (entries.size <= maxEntries) break;
        entries.delete(stalest);
      }
    },
    succeeded(address, user) {
      // Called for every authenticated request: nothing to build when nobody failed lately.
      if (entries.size > 0) entries.delete(keyOf(address, user));
    },
    get size() {
      return entries.size;
    },
  };
}
