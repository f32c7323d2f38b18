// Deciding whether an Authorization header names a user of the htpasswd file with the right
// password. Order per request: parse the header, look in the cache of recent successes, join a
// verification of the same header already running, and only then verify.

import { randomBytes } from 'node:crypto';
import { parseBasicAuthorization } from './basic.js';
import { createCredentialCache } from './credential-cache.js';
import { apr1, costliestHash, equalStrings, sha1Hash, verificationCost } from './hashes.js';
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
  /**
   * Resolves to a result for missing, malformed, wrong or right credentials; rejects only on faults
   * (AUTH_BUSY, AUTH_WORKER_FAILED). `client` (an address) is whom the verification queue is fair to.
   */
  authenticate(authorization: string | undefined, client?: string): Promise<AuthResult>;
  /**
   * The user, when this exact header succeeded recently: the synchronous path almost every request
   * of a push or pull takes. Undefined means "ask authenticate()", not "refused".
   */
  recall(authorization: string | undefined): string | undefined;
  /** Whether a verification of this exact header is running: authenticate() would join it. */
  verifying(authorization: string | undefined): boolean;
  /** The hash of a user's entry in the user set in force; undefined when there is no such user. */
  hashOf(user: string): string | undefined;
  /** Switches to a new user set; remembered successes and verifications in flight are forgotten. */
  replaceUsers(users: HtpasswdUsers): void;
  close(): Promise<void>;
  stats(): AuthStats;
}

/** One user set, with the dummy hash that unknown user names (and cheap hashes) are checked against. */
interface UserSet {
  users: HtpasswdUsers;
  /** The cost (verificationCost) of the file's costliest entry. */
  costliest: number;
  dummy: Promise<PasswordHash> | null;
}

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const pool = createWorkerPool({ size: options.workers, maxQueue: options.maxQueue });
  const cache = createCredentialCache({ maxEntries: options.cacheEntries, ttlMs: options.cacheTtlMs });
  const counts: AuthStats = { verifications: 0, cacheHits: 0 };
  let current = userSet(options.users);

  function recall(authorization: string | undefined): string | undefined {
    if (typeof authorization !== 'string' || authorization === '') return undefined;
    // Only headers that parsed and verified are ever cached, so a hit needs no parsing.
    const user = cache.get(authorization);
    if (user !== undefined) counts.cacheHits++;
    return user;
  }

  async function authenticate(authorization: string | undefined, client = ''): Promise<AuthResult> {
    const cachedUser = recall(authorization);
    if (cachedUser !== undefined) return { ok: true, user: cachedUser, cached: true };
    const parsed = parseBasicAuthorization(authorization);
    if (!parsed.ok) return { ok: false, reason: parsed.reason, user: parsed.user };
    const header = authorization as string;
    return cache.share(header, () => verify(header, parsed.credentials, client));
  }

  async function verify(header: string, { user, password }: Credentials, client: string): Promise<AuthResult> {
    const set = current;
    const known = set.users.get(user);
    // An unknown user costs the same work as a known one, so timing does not reveal user names.
    const hash = known ?? (await dummyHash(set, client));
    // A hash cheaper than the file's costliest is checked alongside a dummy like the costliest,
    // so its answer takes as long as theirs: timing tells a user with a cheap hash from neither an
    // unknown user nor one with a costly hash.
    const cheaper = known !== undefined && verificationCost(known) < set.costliest;
    const started = process.hrtime.bigint();
    const [matched] = await Promise.all([checkPassword(pool, hash, password, client), cheaper ? checkDummy(set, client) : null]);
    counts.verifications++;
    options.onVerified?.(Number(process.hrtime.bigint() - started) / 1e9);
    if (!matched || known === undefined) return { ok: false, reason: 'mismatch', user };
    // A success from a user set that has since been replaced must not outlive it.
    if (set === current) cache.set(header, user);
    return { ok: true, user, cached: false };
  }

  async function checkDummy(set: UserSet, client: string): Promise<boolean> {
    return checkPassword(pool, await dummyHash(set, client), randomBytes(12).toString('base64'), client);
  }

  function dummyHash(set: UserSet, client: string): Promise<PasswordHash> {
    set.dummy ??= makeDummyHash(pool, set.users, client).catch((err: unknown) => {
      set.dummy = null; // e.g. AUTH_BUSY: try again on the next unknown user
      throw err;
    });
    return set.dummy;
  }

  return {
    authenticate,
    recall,
    hashOf: (user) => current.users.get(user)?.hash,
    verifying: (authorization) => typeof authorization === 'string' && cache.running(authorization),
    replaceUsers(users) {
      current = userSet(users);
      cache.clear();
    },
    async close() {
      cache.clear();
      await pool.close();
    },
    stats: () => ({ ...counts }),
  };
}

function userSet(users: HtpasswdUsers): UserSet {
  const costliest = costliestHash(users.values());
  return { users, costliest: costliest === null ? 0 : verificationCost(costliest), dummy: null };
}

/** Every hash is computed in a worker thread: even apr1's 1000 MD5 rounds on a long password stall a loop. */
async function checkPassword(pool: WorkerPool, hash: PasswordHash, password: string, client: string): Promise<boolean> {
  switch (hash.kind) {
    case 'bcrypt':
      return pool.compare(password, hash.hash, client);
    case 'sha-crypt':
      return equalStrings(await pool.run<string>({ op: 'sha-crypt', password, setting: hash.hash }, client), hash.hash);
    case 'apr1':
      return equalStrings(await pool.run<string>({ op: 'apr1', password, setting: hash.hash }, client), hash.hash);
    case 'sha1':
      return equalStrings(await pool.run<string>({ op: 'sha1', password }, client), hash.hash);
  }
}


/**
 * A hash of a random password, made like the entry of the file that is the most expensive to
 * check (bcrypt at its cost, SHA-crypt with its rounds, apr1 or {SHA}).
 */
async function makeDummyHash(pool: WorkerPool, users: HtpasswdUsers, client: string): Promise<PasswordHash> {
  const secret = randomBytes(24).toString('base64');
  const costliest = costliestHash(users.values());
  switch (costliest?.kind) {
    case 'bcrypt':
      return { ...costliest, hash: await pool.hash(secret, costliest.cost, client) };
    case 'sha-crypt': {
      const setting = `$${costliest.digest === 'sha256' ? 5 : 6}$rounds=${costliest.rounds}$${randomBytes(8).toString('hex')}`;
      return { ...costliest, hash: await pool.shaCrypt(secret, setting, client) };
    }
    case 'apr1':
      return { kind: 'apr1', hash: apr1(secret, randomBytes(4).toString('hex')) };
    default:
      return { kind: 'sha1', hash: sha1Hash(secret) };
  }
}
