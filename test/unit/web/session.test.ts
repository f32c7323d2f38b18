// Web UI sessions: signed cookies bound to the user's htpasswd entry, with CSRF tokens of their own.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSessions, cookieValue, LOGIN_COOKIE, SESSION_COOKIE } from '../../../src/web/session.js';

const users = new Map([['alice', '$2y$05$hash-of-alice'], ['bob', '$2y$05$hash-of-bob']]);
let clock = 1_800_000_000_000;
const sessions = createSessions({ secret: randomBytes(32), ttlS: 3600, hashOf: (u) => users.get(u), now: () => clock });

/** The Cookie header a browser sends back for a Set-Cookie value. */
const sentBack = (setCookie: string) => setCookie.split(';')[0]!;

describe('web UI sessions', () => {
  it('starts a session a browser can only send back over HTTPS, to this host, from this site', () => {
    const { cookie, session } = sessions.start('alice');
    expect(cookie.startsWith(`${SESSION_COOKIE}=`)).toBe(true);
    for (const attribute of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Strict', 'Max-Age=3600']) expect(cookie.split('; ')).toContain(attribute);
    expect(cookie).not.toMatch(/Domain=/i);
    expect(session.user).toBe('alice');
    expect(session.expiresAt.getTime()).toBe(clock + 3600_000);
  });

  it('reads back the session it started, with the same CSRF token', () => {
    const { cookie, session } = sessions.start('alice');
    const read = sessions.read(`other=1; ${sentBack(cookie)}`);
    expect(read?.user).toBe('alice');
    expect(read?.csrf).toBe(session.csrf);
    expect(sessions.tokenMatches(session.csrf, read!.csrf)).toBe(true);
  });

  it('gives every session its own CSRF token', () => {
    expect(sessions.start('alice').session.csrf).not.toBe(sessions.start('alice').session.csrf);
  });

  it('refuses a cookie whose payload was changed to another user', () => {
    const value = cookieValue(sentBack(sessions.start('bob').cookie), SESSION_COOKIE)!;
    const [payload, signature] = value.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, u: 'alice' })).toString('base64url');
    expect(sessions.read(`${SESSION_COOKIE}=${forged}.${signature}`)).toBeNull();
  });

  it('refuses a cookie signed with another secret', () => {
    const other = createSessions({ secret: randomBytes(32), ttlS: 3600, hashOf: (u) => users.get(u), now: () => clock });
    expect(sessions.read(sentBack(other.start('alice').cookie))).toBeNull();
  });

  it('ends a session when it expires', () => {
    const cookie = sentBack(sessions.start('alice').cookie);
    clock += 3599_000;
    expect(sessions.read(cookie)).not.toBeNull();
    clock += 1_000;
    expect(sessions.read(cookie)).toBeNull();
  });

  it('ends a session when the user gets a new password or is removed', () => {
    const cookie = sentBack(sessions.start('bob').cookie);
    users.set('bob', '$2y$05$a-new-hash');
    expect(sessions.read(cookie)).toBeNull();
    const alice = sentBack(sessions.start('alice').cookie);
    users.delete('alice');
    expect(sessions.read(alice)).toBeNull();
  });

  it('refuses garbage, missing and oversized cookies', () => {
    for (const header of [undefined, '', `${SESSION_COOKIE}=`, `${SESSION_COOKIE}=abc`, `${SESSION_COOKIE}=a.b.c`, `${SESSION_COOKIE}=${'x'.repeat(5000)}.y`]) {
      expect(sessions.read(header)).toBeNull();
    }
  });

  it('removes the session with a cookie that expires at once', () => {
    expect(sessions.cleared).toMatch(new RegExp(`^${SESSION_COOKIE}=;`));
    expect(sessions.cleared).toContain('Max-Age=0');
  });

  it('checks a login form against the nonce cookie it was served with', () => {
    users.set('alice', '$2y$05$hash-of-alice');
    const form = sessions.loginForm();
    expect(form.cookie.startsWith(`${LOGIN_COOKIE}=`)).toBe(true);
    expect(form.cookie).toContain('HttpOnly');
    expect(sessions.loginFormValid(sentBack(form.cookie), form.csrf)).toBe(true);
    expect(sessions.loginFormValid(sentBack(form.cookie), sessions.loginForm().csrf)).toBe(false);
    expect(sessions.loginFormValid(undefined, form.csrf)).toBe(false);
    expect(sessions.loginFormValid(sentBack(form.cookie), '')).toBe(false);
  });
});
