// @ts-check
// SHA-256-crypt and SHA-512-crypt (`$5$`, `$6$`), Ulrich Drepper's "Unix crypt using SHA-256 and
// SHA-512", computed exactly as glibc's crypt(3) does for Apache's `htpasswd -2` / `-5`, nginx and
// /etc/shadow. Plain JavaScript because the verification worker threads load it too, and Node 20
// cannot load TypeScript there.

import { createHash } from 'node:crypto';

export const SHA_CRYPT_DEFAULT_ROUNDS = 5000;
export const SHA_CRYPT_MIN_ROUNDS = 1000;
export const SHA_CRYPT_MAX_ROUNDS = 999_999_999;
export const SHA_CRYPT_MAX_SALT = 16;

const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * The digest bytes taken three at a time into four characters, in the spec's order; the bytes left
 * over go last.
 * @typedef {{ algorithm: 'sha256' | 'sha512', triples: number[][], tail: number[] }} Variant
 */

/** @type {Record<'5' | '6', Variant>} */
const VARIANTS = {
  5: {
    algorithm: 'sha256',
    triples: [
      [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14],
      [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29],
    ],
    tail: [31, 30],
  },
  6: {
    algorithm: 'sha512',
    triples: [
      [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48],
      [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13],
      [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
    ],
    tail: [63],
  },
};

/**
 * The settings part of a `$5$`/`$6$` string (a whole hash works too), read as glibc reads it:
 * `rounds=N$` counts only when followed by `$`, N is clamped into 1000..999999999, and the salt
 * is what comes before the next `$`, cut to 16 characters.
 * @param {string} setting
 * @returns {{ id: '5' | '6', rounds: number, customRounds: boolean, salt: string }}
 */
export function parseShaCryptSetting(setting) {
  const id = setting.startsWith('$5$') ? '5' : setting.startsWith('$6$') ? '6' : null;
  if (id === null) throw new Error('not a SHA-crypt setting: it must start with $5$ or $6$');
  let rest = setting.slice(3);
  let rounds = SHA_CRYPT_DEFAULT_ROUNDS;
  let customRounds = false;
  const custom = /^rounds=(\d+)\$/.exec(rest);
  if (custom !== null) {
    rounds = Math.min(SHA_CRYPT_MAX_ROUNDS, Math.max(SHA_CRYPT_MIN_ROUNDS, Number(custom[1])));
    customRounds = true;
    rest = rest.slice(custom[0].length);
  }
  const end = rest.indexOf('$');
  const salt = (end < 0 ? rest : rest.slice(0, end)).slice(0, SHA_CRYPT_MAX_SALT);
  return { id, rounds, customRounds, salt };
}

/**
 * The whole crypt string of a password under a setting, e.g.
 * shaCrypt('Hello world!', '$5$saltstring') === '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'.
 * The password is hashed as UTF-8, as htpasswd hashes the bytes it was given.
 * @param {string} password
 * @param {string} setting
 * @returns {string}
 */
export function shaCrypt(password, setting) {
  const { id, rounds, customRounds, salt } = parseShaCryptSetting(setting);
  const variant = VARIANTS[id];
  const digest = shaCryptDigest(variant.algorithm, Buffer.from(password, 'utf8'), Buffer.from(salt, 'utf8'), rounds);
  const prefix = customRounds ? `$${id}$rounds=${rounds}$` : `$${id}$`;
  return `${prefix}${salt}$${encode(variant, digest)}`;
}

/**
 * Steps 1-21 of the spec. The names follow it: A, B, C are digests, DP and DS the digests that
 * P' and S' (password and salt stretched by repetition) are cut from.
 * @param {'sha256' | 'sha512'} algorithm
 * @param {Buffer} pw
 * @param {Buffer} salt
 * @param {number} rounds
 * @returns {Buffer}
 */
function shaCryptDigest(algorithm, pw, salt, rounds) {
  const hash = (/** @type {Buffer[]} */ ...parts) => {
    const h = createHash(algorithm);
    for (const part of parts) h.update(part);
    return h.digest();
  };
  const b = hash(pw, salt, pw);
  const aParts = [pw, salt, repeatTo(b, pw.length)];
  for (let n = pw.length; n > 0; n >>= 1) aParts.push((n & 1) === 1 ? b : pw);
  const a = hash(...aParts);
  const p = repeatTo(hash(...Array(pw.length).fill(pw)), pw.length);
  const s = repeatTo(hash(...Array(16 + a.readUInt8(0)).fill(salt)), salt.length);
  let c = a;
  // The rounds are there only to make guessing slow; the pattern of what is mixed in is the spec's.
  for (let i = 0; i < rounds; i++) {
    const h = createHash(algorithm);
    h.update((i & 1) === 1 ? p : c);
    if (i % 3 !== 0) h.update(s);
    if (i % 7 !== 0) h.update(p);
    h.update((i & 1) === 1 ? c : p);
    c = h.digest();
  }
  return c;
}

/**
 * `source` repeated, then cut, to `length` bytes.
 * @param {Buffer} source
 * @param {number} length
 */
function repeatTo(source, length) {
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; at += source.length) source.copy(out, at, 0, Math.min(source.length, length - at));
  return out;
}

/**
 * @param {Variant} variant
 * @param {Buffer} d
 */
function encode(variant, d) {
  let out = '';
  const byte = (/** @type {number | undefined} */ index) => d.readUInt8(index);
  for (const [x, y, z] of variant.triples) out += to64((byte(x) << 16) | (byte(y) << 8) | byte(z), 4);
  const tail = variant.tail.reduce((value, index) => (value << 8) | byte(index), 0);
  return out + to64(tail, variant.tail.length + 1);
}

/**
 * `count` characters of the crypt alphabet, least significant six bits first.
 * @param {number} value
 * @param {number} count
 */
function to64(value, count) {
  let out = '';
  for (let i = 0; i < count; i++, value >>= 6) out += CRYPT64[value & 63];
  return out;
}
