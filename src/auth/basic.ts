// Parsing `Authorization: Basic <token68>` (RFC 7617 over RFC 7235). Strict on purpose: whatever is
// not exactly one well-formed Basic credential within the length limits is 'malformed', and
// nothing here ever throws.

import type { Credentials } from './types.js';

export type BasicAuthorization =
  | { ok: true; credentials: Credentials }
  | { ok: false; reason: 'missing' | 'malformed'; user: string | null };

const MISSING = Object.freeze({ ok: false, reason: 'missing', user: null } as const);
const MALFORMED = Object.freeze({ ok: false, reason: 'malformed', user: null } as const);

// auth-scheme is a token, then 1*SP, then the credentials (RFC 7235 section 2.1).
const SHAPE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +(.*)$/s;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Longest user name, in UTF-8 bytes (Apache's htpasswd allows 255 characters). */
export const MAX_USER_BYTES = 256;
/** Longest password, in UTF-8 bytes: more than any hash format uses (bcrypt reads 72). */
export const MAX_PASSWORD_BYTES = 1024;
// Base64 of the longest credentials ("user:password"); anything longer is refused undecoded.
const MAX_TOKEN_LENGTH = 4 * Math.ceil((MAX_USER_BYTES + 1 + MAX_PASSWORD_BYTES) / 3);

export function parseBasicAuthorization(value: string | undefined): BasicAuthorization {
  if (value === undefined) return MISSING;
  if (typeof value !== 'string') return MALFORMED; // a caller passing a header array by mistake
  const trimmed = trimSpaces(value);
  if (trimmed === '') return MISSING;
  // Base64 has no ',': a comma means several credentials, e.g. two Authorization headers joined.
  if (trimmed.includes(',')) return MALFORMED;
  const shape = SHAPE.exec(trimmed);
  if (shape === null || shape[1]!.toLowerCase() !== 'basic') return MALFORMED;
  const decoded = decodeToken68(shape[2]!);
  if (decoded === null) return MALFORMED;
  return splitCredentials(decoded);
}

/** Without leading and trailing spaces and tabs; a loop, as /[ \t]+$/ takes quadratic time on a long run of spaces. */
function trimSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

/** Strict base64 then strict UTF-8: Buffer.from(x, 'base64') would skip junk and accept base64url. */
function decodeToken68(token: string): string | null {
  if (token.length > MAX_TOKEN_LENGTH) return null;
  if (token === '' || token.length % 4 !== 0 || !BASE64.test(token)) return null;
  const bytes = Buffer.from(token, 'base64');
  // Unused bits in the last character must be zero, so each credential has exactly one spelling.
  if (bytes.toString('base64') !== token) return null;
  try {
    // ignoreBOM keeps a leading U+FEFF as part of the user name instead of silently dropping it.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

function splitCredentials(decoded: string): BasicAuthorization {
  // The user id cannot contain ':', the password can (RFC 7617 section 2).
  const colon = decoded.indexOf(':');
  if (colon <= 0) return MALFORMED;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  // Limits enforced before any work: no hash ever sees an outsized password, and no table a
  // stranger's user name.
  if (CONTROL.test(user) || Buffer.byteLength(user) > MAX_USER_BYTES || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return MALFORMED;
  return { ok: true, credentials: { user, password } };
}
