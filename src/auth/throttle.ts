// Slowing down password guessing: repeated failed logins for one user from one client wait an
// exponentially growing time (bounded) before the next attempt is even checked. Keyed by client
// *and* user, so a guesser elsewhere can never lock a real user out, and a success clears it.
//
// Checks in flight count too: at most as many verifications run at once for one user from one
// client as failures are still free (one at a time once waits apply), so a burst of concurrent
// guesses is not all verified before the first failure is recorded.
//
// A client is an IPv4 address or an IPv6 /64 (see client-key.ts). The table is bounded in bytes,
// not only in entries: keys are a fixed-size keyed hash of client and user name, so a long user
// name costs no more memory than a short one.
//
// Per process: with --workers N, a client's connections may land on different processes, each
// counting on its own; the bound on guesses per second is then N times as high, still far below
// what an unthrottled bcrypt check allows.

import { createHmac, randomBytes } from 'node:crypto';
import { clientKey } from './client-key.js';

export interface ThrottleOptions {
  /** Failures allowed before any wait; 0 turns throttling off. */
  readonly freeFailures: number;
  /** Longest wait, in ms. */
  readonly maxDelayMs: number;
  /** Clients and users tracked at once; the least recently failed are forgotten first. */
  readonly maxEntries?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export type AttemptOutcome = 'failed' | 'succeeded' | 'abandoned';

export interface LoginThrottle {
  /** Milliseconds this client must still wait before a login for this user is checked; 0: go ahead. */
  retryAfterMs(address: string, user: string): number;
  /**
   * Starts the check of a new guess: 0 when it may run now (it then counts as in flight until
   * finish()), otherwise the milliseconds to wait, as retryAfterMs.
   */
  begin(address: string, user: string): number;
  /** Ends a check begin() let run: a failure counts, a success forgets the failures. */
  finish(address: string, user: string, outcome: AttemptOutcome): void;
  /** Records a success, which forgets the failures. */
  succeeded(address: string, user: string): void;
  readonly size: number;
}

interface Entry {
  failures: number;
  /** Checks begun and not finished. */
  inFlight: number;
  /** No check before this time. */
  until: number;
  /** The entry is forgotten once this time passes without a new failure. */
  expires: number;
}

const FIRST_DELAY_MS = 1_000;
/** What a client is told to wait when its allowance of checks in flight is used up. */
const IN_FLIGHT_RETRY_MS = 1_000;
/** Bytes of the keyed hash kept per entry: collisions would need 2^64 tries. */
const KEY_BYTES = 16;
/** Entries by default: about 20 MiB of table at most (measured ~195 bytes an entry, whatever the user name). */
export const DEFAULT_MAX_ENTRIES = 100_000;

/** The wait after `failures` failures: none for the free ones, then 1 s, 2 s, 4 s, ... up to maxDelayMs. */
export function throttleDelayMs(failures: number, freeFailures: number, maxDelayMs: number): number {
  if (freeFailures <= 0 || failures < freeFailures) return 0;
  const doublings = Math.min(failures - freeFailures, 30);
  return Math.min(maxDelayMs, FIRST_DELAY_MS * 2 ** doublings);
}

export function createLoginThrottle(options: ThrottleOptions): LoginThrottle {
  const { freeFailures, maxDelayMs } = options;
  const maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_MAX_ENTRIES);
  const now = options.now ?? Date.now;
  const forgetAfterMs = Math.max(maxDelayMs, FIRST_DELAY_MS);
  // Map order is insertion order: re-inserting on each failure keeps the stalest first.
  const entries = new Map<string, Entry>();
  const secret = randomBytes(32);
  const keyOf = (address: string, user: string): string =>
    createHmac('sha256', secret).update(clientKey(address)).update('\u0000').update(user).digest().toString('base64', 0, KEY_BYTES);

  function live(key: string, at: number): Entry | undefined {
    const entry = entries.get(key);
    if (entry !== undefined && entry.expires <= at && entry.inFlight === 0) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** (Re)inserts an entry as the freshest, forgetting the stalest beyond the bound. */
  function keep(key: string, entry: Entry): void {
    entries.delete(key);
    entries.set(key, entry);
    for (const stalest of entries.keys()) {
      if (entries.size <= maxEntries) break;
      entries.delete(stalest);
    }
  }

  function recordFailure(key: string, entry: Entry, at: number): void {
    entry.failures++;
    const delay = throttleDelayMs(entry.failures, freeFailures, maxDelayMs);
    entry.until = at + delay;
    // Forgotten after a quiet spell as long as the longest wait: a user who mistyped a few times
    // last week starts afresh.
    entry.expires = at + delay + forgetAfterMs;
    keep(key, entry);
  }

  return {
    retryAfterMs(address, user) {
      if (entries.size === 0) return 0;
      const at = now();
      const entry = live(keyOf(address, user), at);
      return entry === undefined ? 0 : Math.max(0, entry.until - at);
    },
    begin(address, user) {
      if (freeFailures <= 0) return 0;
      const at = now();
      const key = keyOf(address, user);
      const entry = live(key, at);
      if (entry === undefined) {
        keep(key, { failures: 0, inFlight: 1, until: 0, expires: at + forgetAfterMs });
        return 0;
      }
      if (entry.until > at) return entry.until - at;
      const allowed = Math.max(1, freeFailures - entry.failures);
      if (entry.inFlight >= allowed) return IN_FLIGHT_RETRY_MS;
      entry.inFlight++;
      return 0;
    },
    finish(address, user, outcome) {
      if (freeFailures <= 0) return;
      const key = keyOf(address, user);
      const entry = entries.get(key);
      if (outcome === 'succeeded') {
        entries.delete(key);
        return;
      }
      const at = now();
      // Forgotten meanwhile (the table was full): a failure starts a new count.
      const current = entry ?? { failures: 0, inFlight: 1, until: 0, expires: 0 };
      current.inFlight = Math.max(0, current.inFlight - 1);
      if (outcome === 'failed') recordFailure(key, current, at);
      else if (current.failures === 0 && current.inFlight === 0) entries.delete(key);
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
