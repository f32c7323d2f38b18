// Recognising htpasswd hash formats, their relative cost, and constant-time comparison. The
// gateway computes every hash in worker threads (see worker-pool.ts); the synchronous verifiers
// here serve the CLI.

import { timingSafeEqual } from 'node:crypto';
import { apr1, apr1Salt, sha1Hash } from './apr1.js';
import { SHA_CRYPT_MIN_ROUNDS } from './sha-crypt.js';
import type { PasswordHash } from './types.js';

export { apr1, sha1Hash };

const RECREATE = 're-create the entry with `registry-gateway htpasswd add <user> --file <file>` or Apache\'s `htpasswd -B <file> <user>`';

/**
 * The most SHA-crypt rounds accepted (passlib's defaults, 535,000 and 656,000, fit). One login at
 * the limit costs about 3 s of a verification thread, as much as bcrypt at cost 14.
 */
export const SHA_CRYPT_MAX_ACCEPTED_ROUNDS = 1_000_000;

/** Alphabet of crypt(3)-style hashes (apr1, DES crypt); bcrypt orders the same characters differently. */
const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BCRYPT64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;
const APR1_RE = /^\$apr1\$([./0-9A-Za-z]{1,8})\$([./0-9A-Za-z]{22})$/;
const SHA1_RE = /^\{SHA\}([A-Za-z0-9+/]{27}=)$/;
const SHA_CRYPT_RE = /^\$([56])\$(?:rounds=(\d{1,12})\$)?([./0-9A-Za-z]{1,16})\$([./0-9A-Za-z]*)$/;

/** Recognises a hash by a strict pattern, or explains (without quoting it) why it cannot be used. */
export function identifyHash(hash: string): PasswordHash | { error: string } {
  if (hash.length === 0) return { error: 'the password hash is empty' };
  if (/^\s|\s$/.test(hash)) return { error: 'the password hash starts or ends with whitespace; remove it' };
  if (hash.startsWith('$2')) return identifyBcrypt(hash);
  if (hash.startsWith('$apr1$')) return identifyApr1(hash);
  if (hash.startsWith('{SHA}')) return identifySha1(hash);
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return identifyShaCrypt(hash);
  return { error: describeUnsupported(hash) };
}

function identifyBcrypt(hash: string): PasswordHash | { error: string } {
  if (hash.startsWith('$2x$')) {
    return { error: `bcrypt with the $2x$ prefix (made by the old, buggy crypt_blowfish) is not supported; ${RECREATE}` };
  }
  const variant = /^\$2[a-z]?\$/.exec(hash)?.[0];
  if (variant !== undefined && !['$2a$', '$2b$', '$2y$'].includes(variant)) {
    return { error: `bcrypt with the ${variant} prefix is not supported; ${RECREATE}` };
  }
  const m = BCRYPT_RE.exec(hash);
  if (m === null) return { error: damaged('bcrypt', '60 characters: prefix, two-digit cost, then 53 of ./A-Za-z0-9') };
  const cost = Number(m[1]);
  if (cost < 4 || cost > 31) return { error: `bcrypt cost ${m[1]} is outside the valid range 04-31; ${RECREATE}` };
  // 22 characters carry a 128-bit salt and 31 carry a 184-bit hash: the unused low bits of the
  // last character must be zero, or no password can ever match (bcrypt re-encodes canonically).
  if (!lowBitsZero(BCRYPT64, m[2]!, 16) || !lowBitsZero(BCRYPT64, m[3]!, 4)) {
    return { error: damaged('bcrypt', 'a hash bcrypt could have produced') };
  }
  return { kind: 'bcrypt', cost, hash };
}

function identifyApr1(hash: string): PasswordHash | { error: string } {
  const m = APR1_RE.exec(hash);
  // The last character encodes a single byte in two base-64 digits, so it is one of ./01.
  if (m === null || CRYPT64.indexOf(m[2]!.at(-1)!) >= 4) {
    return { error: damaged('apr1 (MD5)', '$apr1$, a salt of 1-8 characters, $ and 22 characters') };
  }
  return { kind: 'apr1', hash };
}

function identifySha1(hash: string): PasswordHash | { error: string } {
  const m = SHA1_RE.exec(hash);
  // Round-tripping rejects base64 whose unused bits are set: it cannot be a SHA-1 digest htpasswd wrote.
  if (m === null || Buffer.from(m[1]!, 'base64').toString('base64') !== m[1]) {
    return { error: damaged('{SHA}', '{SHA} followed by 28 base64 characters') };
  }
  return { kind: 'sha1', hash };
}

/** The two SHA-crypt variants: name, digest characters, and how many values the last one can take. */
const SHA_CRYPT = {
  '5': { name: 'SHA-256 crypt ($5$)', digest: 'sha256', length: 43, lastValues: 16 },
  '6': { name: 'SHA-512 crypt ($6$)', digest: 'sha512', length: 86, lastValues: 4 },
} as const;

function identifyShaCrypt(hash: string): PasswordHash | { error: string } {
  const variant = SHA_CRYPT[hash[1] as '5' | '6'];
  const m = SHA_CRYPT_RE.exec(hash);
  const digest = m?.[4] ?? '';
  // The last character carries the digest's leftover bits (16 of 18, or 8 of 12): the rest are 0.
  if (m === null || digest.length !== variant.length || CRYPT64.indexOf(digest.at(-1)!) >= variant.lastValues) {
    const expected = `${hash.slice(0, 3)}, optionally rounds=N$, a salt of 1-16 characters, $ and ${variant.length} characters`;
    return { error: damaged(variant.name, expected) };
  }
  if (m[2] === undefined) return { kind: 'sha-crypt', digest: variant.digest, rounds: 5000, hash };
  const rounds = Number(m[2]);
  // crypt(3) raises fewer rounds to 1000 and writes the number without leading zeros, so the
  // string it computes could never equal this one.
  if (rounds < SHA_CRYPT_MIN_ROUNDS || m[2].startsWith('0')) {
    return { error: `the ${variant.name} hash has rounds=${m[2]}, which crypt(3) never writes (it writes 1000 or more, without leading zeros), so no password can match it; ${RECREATE}` };
  }
  if (rounds > SHA_CRYPT_MAX_ACCEPTED_ROUNDS) {
    return {
      error: `the ${variant.name} hash has rounds=${rounds}, more than the ${SHA_CRYPT_MAX_ACCEPTED_ROUNDS} the gateway accepts (each login would take seconds of CPU); ${RECREATE}, or \`htpasswd -${hash[1] === '5' ? '2' : '5'}\` with the default 5000 rounds`,
    };
  }
  return { kind: 'sha-crypt', digest: variant.digest, rounds, hash };
}

function damaged(kind: string, expected: string): string {
  return `the ${kind} hash is truncated or damaged (expected ${expected}); ${RECREATE}`;
}

/** True when the last character's value, in the given alphabet, is a multiple of `multiple`. */
function lowBitsZero(alphabet: string, encoded: string, multiple: number): boolean {
  return alphabet.indexOf(encoded.at(-1)!) % multiple === 0;
}

const UNSUPPORTED: ReadonlyArray<readonly [string, string]> = [
  ['$1$', 'MD5-crypt ($1$)'],
  ['$y$', 'yescrypt ($y$)'],
  ['$argon2', 'Argon2'],
  ['{SSHA}', 'salted SHA-1 ({SSHA})'],
  ['{PLAIN}', 'a plain-text password ({PLAIN})'],
];

function describeUnsupported(hash: string): string {
  for (const [prefix, name] of UNSUPPORTED) {
    if (hash.startsWith(prefix)) return `${name} is not supported; ${RECREATE}`;
  }
  const scheme = /^(\$[A-Za-z0-9-]{1,16}\$|\{[A-Za-z0-9-]{1,16}\})/.exec(hash);
  if (scheme !== null) return `the ${scheme[1]} hash format is not supported; ${RECREATE}`;
  if (/^[!*]/.test(hash)) {
    // Locked shadow entries ("!...", "*"), and the "*0" htpasswd writes when crypt(3) failed
    // (for instance `htpasswd -2 -r 999`).
    return `the entry is locked or its hash was never made (it starts with ! or *), so no password can match it; remove the line or ${RECREATE}`;
  }
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) {
    return `this looks like a DES crypt hash (\`htpasswd -d\`, which uses only the first 8 characters of a password) or a 13-character plain-text password; neither is supported; ${RECREATE}`;
  }
  return `this is not a recognised password hash; plain text (\`htpasswd -p\`) is not supported; ${RECREATE}`;
}

/**
 * Rough cost of checking one password against the hash, in hash-function calls of ~3 µs each
 * (one SHA-crypt round or one apr1 MD5 round), so the dummy hash for unknown users can match the
 * most expensive entry of a file whatever its kind. bcrypt: about 43 such calls per 2^cost.
 */
export function verificationCost(hash: PasswordHash): number {
  switch (hash.kind) {
    case 'bcrypt':
      return 43 * 2 ** hash.cost;
    case 'sha-crypt':
      return hash.rounds;
    case 'apr1':
      return 1000;
    case 'sha1':
      return 1;
  }
}

/** The hash that takes the longest to check, which the dummy hash for unknown users imitates. */
export function costliestHash(hashes: Iterable<PasswordHash>): PasswordHash | null {
  let costliest: PasswordHash | null = null;
  for (const hash of hashes) {
    if (costliest === null || verificationCost(hash) > verificationCost(costliest)) costliest = hash;
  }
  return costliest;
}

/** Checks a password against an apr1 hash already accepted by identifyHash (CLI use; the gateway checks in worker threads). */
export function verifyApr1(password: string, hash: string): boolean {
  return equalStrings(apr1(password, apr1Salt(hash)), hash);
}

/** Checks a password against a {SHA} hash already accepted by identifyHash (CLI use; the gateway checks in worker threads). */
export function verifySha1(password: string, hash: string): boolean {
  return equalStrings(sha1Hash(password), hash);
}

/** Constant-time comparison of a computed crypt string with the stored one. */
export function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
