// @ts-check
// APR1 (Apache's MD5 crypt variant) and {SHA}, as `htpasswd -m` and `htpasswd -s` compute them.
// Plain JavaScript because the verification worker threads load it too (Node 20 cannot load
// TypeScript there): every password check runs off the thread that serves requests.

import { createHash } from 'node:crypto';

const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * The apr1 string of the password's UTF-8 bytes under `salt`. The apache-md5 package feeds
 * JavaScript strings to MD5 as 'ascii' (one byte per UTF-16 unit, high bits dropped), so any
 * non-ASCII password would never verify with it.
 * @param {string} password
 * @param {string} salt
 * @returns {string}
 */
export function apr1(password, salt) {
  const pw = Buffer.from(password, 'utf8');
  const saltBytes = Buffer.from(salt, 'utf8');
  const magic = Buffer.from('$apr1$');
  const alternate = md5(pw, saltBytes, pw);
  const parts = [pw, magic, saltBytes];
  for (let left = pw.length; left > 0; left -= 16) parts.push(alternate.subarray(0, Math.min(left, 16)));
  for (let i = pw.length; i > 0; i >>= 1) parts.push((i & 1) === 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let digest = md5(...parts);
  // The 1000 rounds exist only to slow the hash down; the mixing pattern is Apache's.
  const empty = Buffer.alloc(0);
  for (let i = 0; i < 1000; i++) {
    digest = md5((i & 1) === 1 ? pw : digest, i % 3 !== 0 ? saltBytes : empty, i % 7 !== 0 ? pw : empty, (i & 1) === 1 ? digest : pw);
  }
  return `$apr1$${salt}$${encodeDigest(digest)}`;
}

/**
 * The salt of an apr1 hash (or setting): what stands between `$apr1$` and the next `$`.
 * @param {string} hash
 * @returns {string}
 */
export function apr1Salt(hash) {
  const rest = hash.slice('$apr1$'.length);
  const end = rest.indexOf('$');
  return end === -1 ? rest : rest.slice(0, end);
}

/**
 * A {SHA} hash of the password, as `htpasswd -s` writes it.
 * @param {string} password
 * @returns {string}
 */
export function sha1Hash(password) {
  return `{SHA}${createHash('sha1').update(password, 'utf8').digest('base64')}`;
}

/** @param {Buffer[]} parts */
function md5(...parts) {
  const h = createHash('md5');
  for (const part of parts) h.update(part);
  return h.digest();
}

/** @type {ReadonlyArray<readonly [number, number, number]>} */
const ORDER = [
  [0, 6, 12],
  [1, 7, 13],
  [2, 8, 14],
  [3, 9, 15],
  [4, 10, 5],
];

/** @param {Buffer} d */
function encodeDigest(d) {
  let out = '';
  for (const [a, b, c] of ORDER) out += to64((d.readUInt8(a) << 16) | (d.readUInt8(b) << 8) | d.readUInt8(c), 4);
  return out + to64(d.readUInt8(11), 2);
}

/** @param {number} value @param {number} count */
function to64(value, count) {
  let out = '';
  for (let i = 0; i < count; i++, value >>= 6) out += CRYPT64[value & 63];
  return out;
}
