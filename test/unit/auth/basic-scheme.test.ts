// Basic behind the auth seam: who a request is, or the refusal with its own status, code and
// challenge, which the pipeline writes without knowing the scheme.
import { afterEach, describe, expect, it } from 'vitest';
import { createAuthenticator, type Authenticator } from '../../../src/auth/authenticator.js';
import { basicChallenge, createBasicScheme } from '../../../src/auth/basic-scheme.js';
import { parseHtpasswd } from '../../../src/auth/htpasswd.js';
import { createLoginThrottle } from '../../../src/auth/throttle.js';
import { basic, fixtureText, fixtureUser } from '../../helpers/htpasswd-fixtures.js';

const USERS = parseHtpasswd(fixtureText('users.htpasswd'), 'users.htpasswd').users;
const alice = fixtureUser('users.htpasswd', 'alice');

let authenticator: Authenticator | undefined;
afterEach(async () => {
  await authenticator?.close();
  authenticator = undefined;
});

function scheme(freeFailures = 2) {
  authenticator = createAuthenticator({ users: USERS });
  return createBasicScheme({ authenticator, throttle: createLoginThrottle({ freeFailures, maxDelayMs: 60_000 }), realm: 'Registry Realm' });
}
const from = (authorization?: string, remoteAddress = '192.0.2.1') => ({ headers: authorization === undefined ? {} : { authorization }, remoteAddress });

describe('Basic scheme', () => {
  it('challenges with the realm', () => {
    expect(basicChallenge('Registry Realm')).toBe('Basic realm="Registry Realm"');
    expect(scheme().challenge).toBe('Basic realm="Registry Realm"');
  });

  it('answers the user for right credentials, and recalls them without waiting afterwards', async () => {
    const s = scheme();
    expect(s.recall(from(basic('alice', alice.password)))).toBeUndefined();
    expect(await s.authenticate(from(basic('alice', alice.password)))).toEqual({ kind: 'user', user: 'alice', grant: null });
    expect(s.recall(from(basic('alice', alice.password)))).toEqual({ kind: 'user', user: 'alice', grant: null });
  });

  it('refuses missing, malformed and wrong credentials with 401 and the challenge', async () => {
    const s = scheme();
    for (const [header, reason, user] of [[undefined, 'missing', null], ['Bearer x', 'malformed', null], [basic('alice', 'wrong'), 'mismatch', 'alice']] as const) {
      expect(await s.authenticate(from(header))).toEqual({
        kind: 'refused', status: 401, code: 'UNAUTHORIZED', message: 'authentication required',
        headers: { 'www-authenticate': 'Basic realm="Registry Realm"' }, user, reason, detail: `authentication ${reason}`,
      });
    }
  });

  it('answers 429 with Retry-After once the throttle applies, even to the right password, and recalls nobody meanwhile', async () => {
    const s = scheme();
    expect(await s.authenticate(from(basic('alice', alice.password)))).toMatchObject({ kind: 'user' });
    for (let i = 0; i < 2; i++) await s.authenticate(from(basic('alice', `wrong-${i}`)));
    expect(await s.authenticate(from(basic('alice', alice.password)))).toMatchObject({
      kind: 'refused', status: 429, code: 'TOOMANYREQUESTS', headers: { 'retry-after': '1' }, user: 'alice', reason: 'throttled', detail: 'login throttled after repeated failures',
    });
    expect(s.recall(from(basic('alice', alice.password)))).toBeUndefined();
    expect(s.recall(from(basic('alice', alice.password), '198.51.100.7'))).toMatchObject({ user: 'alice' });
  });
});
