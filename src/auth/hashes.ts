// Recognising htpasswd hash formats, and verifying the two fast ones (apr1, {SHA}).
// bcrypt verification is slow and runs in worker threads (see worker-pool.ts).

import { createHash, timingSafeEqual } from 'node:crypto';
import type { PasswordHash } from './types.js';

const RECREATE = 're-create the entry with `htpasswd -B`';

/** Alphabet of crypt(3)-style hashes (apr1, DES crypt); bcrypt orders the same characters differently. */
const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BCRYPT64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;
const APR1_RE = /^\$apr1\$([./0-9A-Za-z]{1,8})\$([./0-9A-Za-z]{22})$/;
const SHA1_RE = /^\{SHA\}([A-Za-z0-9+/]{27}=)$/;

/** Recognises a hash by a strict pattern, or explains (without quoting it) why it cannot be used. */
export function identifyHash(hash: string): PasswordHash | { error: string } {
  if (hash.length === 0) return { error: 'the password hash is empty' };
  if (/^\s|\s$/.test(hash)) return { error: 'the password hash starts or ends with whitespace; remove it' };
  if (hash.startsWith('$2')) return identifyBcrypt(hash);
  if (hash.startsWith('$apr1$')) return identifyApr1(hash);
  if (hash.startsWith('{SHA}')) return identifySha1(hash);
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

function damaged(kind: string, expected: string): string {
  return `the ${kind} hash is truncated or damaged (expected ${expected}); ${RECREATE}`;
}

/** True when the last character's value, in the given alphabet, is a multiple of `multiple`. */
function lowBitsZero(alphabet: string, encoded: string, multiple: number): boolean {
  return alphabet.indexOf(encoded.at(-1)!) % multiple === 0;
}

const UNSUPPORTED: ReadonlyArray<readonly [string, string]> = [
  ['$1$', 'MD5-crypt ($1$)'],
  ['$5$', 'SHA-256 crypt ($5$)'],
  ['$6$', 'SHA-512 crypt ($6$)'],
  ['$y$', 'yescrypt ($y$)'],
  ['$argon2', 'Argon2'],
  ['{SSHA}', 'salted SHA-1 ({SSHA})'],
];

function describeUnsupported(hash: string): string {
  for (const [prefix, name] of UNSUPPORTED) {
    if (hash.startsWith(prefix)) return `${name} is not supported; ${RECREATE}`;
  }
  const scheme = /^(\$[A-Za-z0-9-]{1,16}\$|\{[A-Za-z0-9-]{1,16}\})/.exec(hash);
  if (scheme !== null) return `the ${scheme[1]} hash format is not supported; ${RECREATE}`;
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) {
    return `this looks like a DES crypt hash (\`htpasswd -d\`) or a 13-character plain-text password; neither is supported; ${RECREATE}`;
  }
  return `this is not a recognised password hash (plain text, as \`htpasswd -p\` writes, is not supported); ${RECREATE}`;
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

function equalStrings(a: string, b: string): boolean {
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
