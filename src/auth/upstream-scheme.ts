// The registry's own sign-in (`--auth upstream`), as a scheme of the auth seam: the gateway checks
// no credentials and keeps no users, no credential cache, no throttle and no hashing threads.
// Every request goes on with its Authorization header, and the registry's 401 or 403, with its
// challenge, comes back to the client. The user name the log shows is only what the credentials
// claim (the user part of Basic, a JWT's `sub`), read without verifying anything and marked so;
// the credentials themselves are never kept or logged.

import { MAX_USER_BYTES, parseBasicAuthorization } from './basic.js';
import { bearerToken } from './bearer.js';
import type { AuthOutcome, AuthScheme } from './scheme.js';

export function createUpstreamScheme(): AuthScheme {
  return {
    challenge: null,
    forwardsCredentials: true,
    // Nothing is remembered: every request is the registry's to judge.
    recall: () => undefined,
    async authenticate({ headers }): Promise<AuthOutcome> {
      const header = headers.authorization;
      // Two Authorization headers arrive joined by a comma, which neither a Basic nor a Bearer
      // credential holds: which one the registry would read is not for the gateway to guess.
      if (typeof header === 'string' && header.includes(',')) {
        return {
          kind: 'refused',
          status: 400,
          code: 'UNSUPPORTED',
          message: 'one Authorization header with one credential is allowed',
          headers: {},
          user: null,
          reason: 'malformed',
          detail: 'authentication malformed: several credentials',
        };
      }
      return { kind: 'unverified', user: claimedUser(header) };
    },
  };
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// A JWT's payload longer than this is not worth reading for a log line.
const MAX_PAYLOAD_CHARS = 16 * 1024;

/**
 * Who an Authorization header claims to be, unverified, for the log: the user part of Basic
 * credentials (never the password), or the `sub` claim of a JWT bearer token (its signature is
 * not checked: the registry does that). Null for anything else, or a name unfit for a log
 * (empty, control characters, over 256 bytes).
 */
export function claimedUser(header: string | undefined): string | null {
  if (typeof header !== 'string') return null;
  const basic = parseBasicAuthorization(header);
  if (basic.ok) return basic.credentials.user;
  const token = bearerToken(header);
  return token === null ? null : jwtSubject(token);
}

function jwtSubject(token: string): string | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const payload = parts[1]!;
  if (payload.length > MAX_PAYLOAD_CHARS || !/^[A-Za-z0-9_-]+$/.test(payload)) return null;
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(payload, 'base64url')));
  } catch {
    return null;
  }
  if (typeof claims !== 'object' || claims === null) return null;
  const sub = (claims as { sub?: unknown }).sub;
  if (typeof sub !== 'string' || sub === '' || CONTROL.test(sub) || Buffer.byteLength(sub) > MAX_USER_BYTES) return null;
  return sub;
}
