// Web UI sessions: a signed cookie, nothing kept on the server, so a session made by one --workers
// process is good in every other, and after a restart (the secret is a file: web/session-key.ts).
//
//   cookie  __Host-registry-session = base64url(JSON {u, exp, sid, b}) "." base64url(HMAC-SHA256)
//
// - `b` binds the session to the user's htpasswd entry: a new password or a removed user ends it
//   at the next reload of the file, as it ends their tokens.
// - The cookie is HttpOnly, Secure, SameSite=Strict, Path=/ and host-only (the __Host- prefix makes
//   the browser insist on all of that): no script can read it, no other site can send it.
// - CSRF: every form that changes something carries a token derived from the session (HMAC of its
//   id), checked in constant time with the request's Origin. Before sign-in, the login form's token
//   is derived from a nonce in a second, equally locked-down cookie.
// - Signing out removes the cookie from the browser. A copy taken before then stays good until it
//   expires (--session-ttl) or the password changes: there is no server-side list to revoke it in.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = '__Host-registry-session';
export const LOGIN_COOKIE = '__Host-registry-login';
/** How long a login form stays good. */
const LOGIN_FORM_TTL_S = 3600;

export interface Session {
  readonly user: string;
  /** The CSRF token of this session's forms. */
  readonly csrf: string;
  readonly expiresAt: Date;
}

export interface SessionOptions {
  readonly secret: Buffer;
  readonly ttlS: number;
  /** The user's htpasswd hash, or undefined when there is no such user (the session then ends). */
  readonly hashOf: (user: string) => string | undefined;
  readonly now?: () => number;
}

export interface Sessions {
  /** A new session for a user just signed in: the Set-Cookie value, and the session. */
  start(user: string): { readonly cookie: string; readonly session: Session };
  /** The session a Cookie header carries, when it is good now; null otherwise. */
  read(cookieHeader: string | undefined): Session | null;
  /** The Set-Cookie value that removes the session from the browser. */
  readonly cleared: string;
  /** The Set-Cookie value that removes a login form's nonce, once signed in. */
  readonly loginCleared: string;
  /** A login form's nonce cookie and the token its form carries. */
  loginForm(): { readonly cookie: string; readonly csrf: string };
  /** Whether a login form's token matches the nonce cookie the request carries. */
  loginFormValid(cookieHeader: string | undefined, csrf: string): boolean;
  /** Constant-time comparison of a form's token with the expected one. */
  tokenMatches(expected: string, given: string): boolean;
}

const b64 = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export function createSessions(options: SessionOptions): Sessions {
  const { secret, ttlS } = options;
  const now = options.now ?? Date.now;
  const mac = (purpose: string, data: string) => createHmac('sha256', secret).update(`${purpose}\0${data}`).digest();
  const binding = (user: string, hash: string) => mac('binding', `${user}\0${hash}`).subarray(0, 16).toString('base64url');
  const csrfOf = (sid: string) => mac('csrf', sid).toString('base64url');
  const cookie = (name: string, value: string, maxAgeS: number) => `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`;
  const tokenMatches = (expected: string, given: string) => {
    const a = Buffer.from(expected);
    const b = Buffer.from(given);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  return {
    start(user) {
      const hash = options.hashOf(user);
      if (hash === undefined) throw new Error(`no user ${JSON.stringify(user)} to start a session for`);
      const exp = Math.floor(now() / 1000) + ttlS;
      const sid = randomBytes(16).toString('base64url');
      const payload = b64(JSON.stringify({ u: user, exp, sid, b: binding(user, hash) }));
      const value = `${payload}.${mac('session', payload).toString('base64url')}`;
      return { cookie: cookie(SESSION_COOKIE, value, ttlS), session: { user, csrf: csrfOf(sid), expiresAt: new Date(exp * 1000) } };
    },
    read(header) {
      const value = cookieValue(header, SESSION_COOKIE);
      if (value === null || value.length > 2048) return null;
      const [payload, signature, extra] = value.split('.');
      if (payload === undefined || signature === undefined || extra !== undefined) return null;
      if (!tokenMatches(mac('session', payload).toString('base64url'), signature)) return null;
      let claims: { u?: unknown; exp?: unknown; sid?: unknown; b?: unknown };
      try {
        claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
      } catch {
        return null;
      }
      const { u, exp, sid, b } = claims;
      if (typeof u !== 'string' || typeof exp !== 'number' || typeof sid !== 'string' || typeof b !== 'string') return null;
      if (exp * 1000 <= now()) return null;
      const hash = options.hashOf(u);
      if (hash === undefined || !tokenMatches(binding(u, hash), b)) return null;
      return { user: u, csrf: csrfOf(sid), expiresAt: new Date(exp * 1000) };
    },
    cleared: cookie(SESSION_COOKIE, '', 0),
    loginCleared: cookie(LOGIN_COOKIE, '', 0),
    loginForm() {
      const nonce = randomBytes(16).toString('base64url');
      return { cookie: cookie(LOGIN_COOKIE, nonce, LOGIN_FORM_TTL_S), csrf: mac('login', nonce).toString('base64url') };
    },
    loginFormValid(header, csrf) {
      const nonce = cookieValue(header, LOGIN_COOKIE);
      return nonce !== null && nonce.length <= 64 && tokenMatches(mac('login', nonce).toString('base64url'), csrf);
    },
    tokenMatches,
  };
}

/** One cookie's value from a Cookie header; null when absent. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
