// Parsing `Authorization: Basic <token68>` (RFC 7617 over RFC 7235). Strict on purpose: whatever is
// not exactly one well-formed Basic credential is 'malformed', and nothing here ever throws.

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

export function parseBasicAuthorization(value: string | undefined): BasicAuthorization {
  if (value === undefined) return MISSING;
  if (typeof value !== 'string') return MALFORMED; // a caller passing a header array by mistake
  const trimmed = value.replace(/^[ \t]+|[ \t]+$/g, '');
  if (trimmed === '') return MISSING;
  // Base64 has no ',': a comma means several credentials, e.g. two Authorization headers joined.
  if (trimmed.includes(',')) return MALFORMED;
  const shape = SHAPE.exec(trimmed);
  if (shape === null || shape[1]!.toLowerCase() !== 'basic') return MALFORMED;
  const decoded = decodeToken68(shape[2]!);
  if (decoded === null) return MALFORMED;
  return splitCredentials(decoded);
}

/** Strict base64 then strict UTF-8: Buffer.from(x, 'base64') would skip junk and accept base64url. */
function decodeToken68(token: string): string | null {
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
  if (CONTROL.test(user)) return MALFORMED;
  return { ok: true, credentials: { user, password: decoded.slice(colon + 1) } };
}
