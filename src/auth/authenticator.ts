// Deciding whether an Authorization header names a user of the htpasswd file with the right
// password. Order per request: parse the header, look in the cache of recent successes, join a
// verification of the same header already running, and only then verify.

import { randomBytes } from 'node:crypto';
import { parseBasicAuthorization } from './basic.js';
import { createCredentialCache } from './credential-cache.js';
import { apr1, costliestHash, equalStrings, sha1Hash, verifyApr1, verifySha1 } from './hashes.js';
import type { AuthResult, Credentials, HtpasswdUsers, PasswordHash } from './types.js';
import { createWorkerPool, type WorkerPool } from './worker-pool.js';

export interface AuthenticatorOptions {
  users: HtpasswdUsers;
  /** bcrypt threads; default min(2, os.availableParallelism()). */
  workers?: number;
  /** bcrypt verifications allowed to wait for a thread; default 256, beyond that AUTH_BUSY. */
  maxQueue?: number;
  /** Successful logins remembered; default 1024. */
  cacheEntries?: number;
  /** How long a success is remembered; default 5 minutes. */
  cacheTtlMs?: number;
  /** Told the time each verification took, waiting for a thread included (for metrics). */
  onVerified?: (seconds: number) => void;
}

export interface AuthStats {
  /** Password hashes actually checked (cache hits and shared verifications are not). */
  verifications: number;
  /** Requests answered from the cache of recent successes. */
  cacheHits: number;
}

export interface Authenticator {
  /** Resolves to a result for missing, malformed, wrong or right credentials; rejects only on faults (AUTH_BUSY, AUTH_WORKER_FAILED). */
  authenticate(authorization: string | undefined): Promise<AuthResult>;
  /**
   * The user, when this exact header succeeded recently: the synchronous path almost every request
   * of a push or pull takes. Undefined means "ask authenticate()", not "refused".
   */
  recall(authorization: string | undefined): string | undefined;
  /** Switches to a new user set; remembered successes and verifications in flight are forgotten. */
  replaceUsers(users: HtpasswdUsers): void;
  close(): Promise<void>;
  stats(): AuthStats;
}

/** One user set, with the dummy hash that unknown user names are checked against. */
interface UserSet {
  users: HtpasswdUsers;
  dummy: Promise<PasswordHash> | null;
}

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const pool = createWorkerPool({ size: options.workers, maxQueue: options.maxQueue });
  const cache = createCredentialCache({ maxEntries: options.cacheEntries, ttlMs: options.cacheTtlMs });
  const counts: AuthStats = { verifications: 0, cacheHits: 0 };
  let current: UserSet = { users: options.users, dummy: null };

  function recall(authorization: string | undefined): string | undefined {
    if (typeof authorization !== 'string' || authorization === '') return undefined;
    // Only headers that parsed and verified are ever cached, so a hit needs no parsing.
    const user = cache.get(authorization);
    if (user !== undefined) counts.cacheHits++;
    return user;
  }

  async function authenticate(authorization: string | undefined): Promise<AuthResult> {
    const cachedUser = recall(authorization);
    if (cachedUser !== undefined) return { ok: true, user: cachedUser, cached: true };
    const parsed = parseBasicAuthorization(authorization);
    if (!parsed.ok) return { ok: false, reason: parsed.reason, user: parsed.user };
    const header = authorization as string;
    return cache.share(header, () => verify(header, parsed.credentials));
  }

  async function verify(header: string, { user, password }: Credentials): Promise<AuthResult> {
    const set = current;
    const known = set.users.get(user);
    // An unknown user costs the same work as a known one, so timing does not reveal user names.
    const hash = known ?? (await dummyHash(set));
    const started = process.hrtime.bigint();
    const matched = await checkPassword(pool, hash, password);
    counts.verifications++;
    options.onVerified?.(Number(process.hrtime.bigint() - started) / 1e9);
    if (!matched || known === undefined) return { ok: false, reason: 'mismatch', user };
    // A success from a user set that has since been replaced must not outlive it.
    if (set === current) cache.set(header, user);
    return { ok: true, user, cached: false };
  }

  function dummyHash(set: UserSet): Promise<PasswordHash> {
    set.dummy ??= makeDummyHash(pool, set.users).catch((err: unknown) => {
      set.dummy = null; // e.g. AUTH_BUSY: try again on the next unknown user
      throw err;
    });
    return set.dummy;
  }

  return {
    authenticate,
    recall,
    replaceUsers(users) {
      current = { users, dummy: null };
      cache.clear();
    },
    async close() {
      cache.clear();
      await pool.close();
    },
    stats: () => ({ ...counts }),
  };
}

function checkPassword(pool: WorkerPool, hash: PasswordHash, password: string): Promise<boolean> {
  switch (hash.kind) {
    case 'bcrypt':
      return pool.compare(password, hash.hash);
    case 'sha-crypt':
      return pool.shaCrypt(password, hash.hash).then((computed) => equalStrings(computed, hash.hash));
    case 'apr1':
      return Promise.resolve(verifyApr1(password, hash.hash));
    case 'sha1':
      return Promise.resolve(verifySha1(password, hash.hash));
  }
}

/**
 * A hash of a random password, made like the entry of the file that is the most expensive to
 * check (bcrypt at its cost, SHA-crypt with its rounds, apr1 or {SHA}).
 */
async function makeDummyHash(pool: WorkerPool, users: HtpasswdUsers): Promise<PasswordHash> {
  const secret = randomBytes(24).toString('base64');
  const costliest = costliestHash(users.values());
  switch (costliest?.kind) {
    case 'bcrypt':
      return { ...costliest, hash: await pool.hash(secret, costliest.cost) };
    case 'sha-crypt': {
      const setting = `$${costliest.digest === 'sha256' ? 5 : 6}$rounds=${costliest.rounds}$${randomBytes(8).toString('hex')}`;
      return { ...costliest, hash: await pool.shaCrypt(secret, setting) };
    }
    case 'apr1':
      return { kind: 'apr1', hash: apr1(secret, randomBytes(4).toString('hex')) };
    default:
      return { kind: 'sha1', hash: sha1Hash(secret) };
  }
}
