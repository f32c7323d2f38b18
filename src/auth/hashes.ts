// Recognising htpasswd hash formats, and verifying the two fast ones (apr1, {SHA}).
// bcrypt and SHA-crypt verification is slow and runs in worker threads (see worker-pool.ts).

import { createHash, timingSafeEqual } from 'node:crypto';
import { SHA_CRYPT_MIN_ROUNDS } from './sha-crypt.js';
import type { PasswordHash } from './types.js';

const RECREATE = 're-create the entry with `registry-gateway htpasswd add <user>` or Apache\'s `htpasswd -B <file> <user>`';

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

/** Checks a password against an apr1 hash already accepted by identifyHash. */
export function verifyApr1(password: string, hash: string): boolean {
  const salt = hash.slice('$apr1$'.length, hash.lastIndexOf('$'));
  return equalStrings(apr1(password, salt), hash);
}

/** Checks a password against a {SHA} hash already accepted by identifyHash. */
export function verifySha1(password: string, hash: string): boolean {
  const expected = Buffer.from(hash.slice('{SHA}'.length), 'base64');
  const actual = createHash('sha1').update(password, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** A {SHA} hash of the password, as `htpasswd -s` writes it. */
export function sha1Hash(password: string): string {
  return `{SHA}${createHash('sha1').update(password, 'utf8').digest('base64')}`;
}

/** Constant-time comparison of a computed crypt string with the stored one. */
export function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * APR1 (Apache's MD5 crypt variant) over the password's UTF-8 bytes, exactly as `htpasswd -m`
 * computes it. The apache-md5 package feeds JavaScript strings to MD5 as 'ascii' (one byte per
 * UTF-16 unit, high bits dropped), so any non-ASCII password would never verify with it.
 */
export function apr1(password: string, salt: string): string {
  const pw = Buffer.from(password, 'utf8');
  const saltBytes = Buffer.from(salt, 'utf8');
  const magic = Buffer.from('$apr1$');
  const alternate = md5(pw, saltBytes, pw);
  const parts: Buffer[] = [pw, magic, saltBytes];
  for (let left = pw.length; left > 0; left -= 16) parts.push(alternate.subarray(0, Math.min(left, 16)));
  for (let i = pw.length; i > 0; i >>= 1) parts.push((i & 1) === 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let digest = md5(...parts);
  // The 1000 rounds exist only to slow the hash down; the mixing pattern is Apache's.
  for (let i = 0; i < 1000; i++) {
    digest = md5(
      (i & 1) === 1 ? pw : digest,
      i % 3 !== 0 ? saltBytes : Buffer.alloc(0),
      i % 7 !== 0 ? pw : Buffer.alloc(0),
      (i & 1) === 1 ? digest : pw,
    );
  }
  return `$apr1$${salt}$${encodeApr1Digest(digest)}`;
}

function md5(...parts: Buffer[]): Buffer {
  const h = createHash('md5');
  for (const part of parts) h.update(part);
  return h.digest();
}

const APR1_ORDER = [
  [0, 6, 12],
  [1, 7, 13],
  [2, 8, 14],
  [3, 9, 15],
  [4, 10, 5],
] as const;

function encodeApr1Digest(d: Buffer): string {
  let out = '';
  for (const [a, b, c] of APR1_ORDER) out += to64((d[a]! << 16) | (d[b]! << 8) | d[c]!, 4);
  return out + to64(d[11]!, 2);
}

function to64(value: number, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++, value >>= 6) out += CRYPT64[value & 63];
  return out;
}
