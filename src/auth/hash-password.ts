// Making password hashes for htpasswd files, in the forms Apache's htpasswd writes, and checking
// a password against any hash the gateway accepts.

import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { GatewayError } from '../errors.js';
import { apr1, equalStrings, identifyHash, verifyApr1, verifySha1 } from './hashes.js';
import { shaCrypt } from './sha-crypt.js';
import type { PasswordHash } from './types.js';

export type HashAlgorithm = 'bcrypt' | 'apr1';

export interface HashOptions {
  algorithm: HashAlgorithm;
  /** bcrypt cost; ignored for apr1. */
  cost?: number;
}

export const BCRYPT_DEFAULT_COST = 10;
/** The range Apache's `htpasswd -C` accepts. */
export const BCRYPT_MIN_COST = 4;
export const BCRYPT_MAX_COST = 17;
/** bcrypt reads no further than this many bytes of a password. */
export const BCRYPT_MAX_PASSWORD_BYTES = 72;

const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const APR1_SALT_LENGTH = 8;

/** Why a password cannot be hashed with the algorithm, or null when it can. */
export function passwordProblem(password: string, algorithm: HashAlgorithm): string | null {
  if (password === '') return 'the password is empty';
  const bytes = Buffer.byteLength(password, 'utf8');
  // Apache's htpasswd would silently ignore the rest; refusing keeps a long passphrase from
  // being weaker than its owner believes.
  if (algorithm === 'bcrypt' && bytes > BCRYPT_MAX_PASSWORD_BYTES) {
    return `the password is ${bytes} bytes long and bcrypt uses only the first ${BCRYPT_MAX_PASSWORD_BYTES}; choose a shorter one or --algorithm apr1`;
  }
  return null;
}

/** A hash of the password that Apache, the registry and the gateway all accept. */
export async function hashPassword(password: string, options: HashOptions): Promise<string> {
  const problem = passwordProblem(password, options.algorithm);
  if (problem !== null) throw new GatewayError('PASSWORD_REFUSED', problem);
  const hash = options.algorithm === 'bcrypt' ? await bcryptHash(password, options.cost ?? BCRYPT_DEFAULT_COST) : apr1(password, apr1Salt());
  // A hash the gateway would refuse must never reach a file.
  const identified = identifyHash(hash);
  if ('error' in identified) throw new Error(`made an unusable ${options.algorithm} hash: ${identified.error}`);
  return hash;
}

async function bcryptHash(password: string, cost: number): Promise<string> {
  if (!Number.isInteger(cost) || cost < BCRYPT_MIN_COST || cost > BCRYPT_MAX_COST) {
    throw new RangeError(`bcrypt cost must be an integer from ${BCRYPT_MIN_COST} to ${BCRYPT_MAX_COST}, not ${cost}`);
  }
  const hash = await bcrypt.hash(password, cost);
  // bcryptjs writes $2b$, Apache $2y$: the same algorithm, and $2y$ is what every htpasswd
  // reader (Apache, distribution's Go bcrypt, the gateway) has accepted the longest.
  return `$2y$${hash.slice('$2b$'.length)}`;
}

/** 8 random characters of the crypt alphabet; 64 divides 256, so `& 63` keeps them uniform. */
function apr1Salt(): string {
  return [...randomBytes(APR1_SALT_LENGTH)].map((b) => CRYPT64[b & 63]).join('');
}

/** Checks a password against a hash identifyHash accepted. */
export async function verifyPassword(password: string, hash: PasswordHash): Promise<boolean> {
  switch (hash.kind) {
    case 'bcrypt':
      return bcrypt.compare(password, hash.hash);
    case 'sha-crypt':
      return equalStrings(shaCrypt(password, hash.hash), hash.hash);
    case 'apr1':
      return verifyApr1(password, hash.hash);
    case 'sha1':
      return verifySha1(password, hash.hash);
  }
}
