import { afterEach, describe, expect, it } from 'vitest';
import { createAuthenticator, type Authenticator } from '../../../src/auth/authenticator.js';
import { apr1 } from '../../../src/auth/hashes.js';
import { parseHtpasswd } from '../../../src/auth/htpasswd.js';
import type { HtpasswdUsers } from '../../../src/auth/types.js';
import { isGatewayError } from '../../../src/errors.js';
import { basic, fixtureText, fixtureUser, fixtureUsers } from '../../helpers/htpasswd-fixtures.js';

const usersOf = (name: string): HtpasswdUsers => parseHtpasswd(fixtureText(name), name).users;
const USERS = usersOf('users.htpasswd');
const alice = fixtureUser('users.htpasswd', 'alice'); // bcrypt cost 5
const bob = fixtureUser('users.htpasswd', 'bob'); // bcrypt cost 10

let auth: Authenticator | undefined;
afterEach(async () => {
  await auth?.close();
  auth = undefined;
});

function start(options: Partial<Parameters<typeof createAuthenticator>[0]> = {}): Authenticator {
  auth = createAuthenticator({ users: USERS, ...options });
  return auth;
}

function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

// Each verification here costs at least a bcrypt cost-10 check (a cheaper hash is checked alongside
// a dummy like bob's, on purpose), and a new user set first makes its dummy hash: on a 2-core
// machine that another test run shared, the tests with ten-odd of these outran the default 30 s.
// Their time is not what is checked, so those get a wider limit; a verification that never
// settles still fails them.
const MANY_VERIFICATIONS = { timeout: 90_000 };

describe('authenticate: answers', () => {
  it('lets in every user of a file written by htpasswd, with their password', MANY_VERIFICATIONS, async () => {
    const a = start();
    const users = [...fixtureUsers('users.htpasswd').values()];
    // At once: the pool's two threads share the work. Each answer is still checked for its user.
    const answers = await Promise.all(users.map(({ user, password }) => a.authenticate(basic(user, password))));
    users.forEach(({ user }, i) => expect(answers[i], user).toEqual({ ok: true, user, cached: false }));
  });

  it('lets in users of CRLF and BOM files', async () => {
    for (const name of ['crlf.htpasswd', 'bom.htpasswd']) {
      const a = start({ users: usersOf(name) });
      for (const { user, password } of fixtureUsers(name).values()) {
        expect((await a.authenticate(basic(user, password))).ok, `${name} ${user}`).toBe(true);
      }
      await a.close();
    }
  });

  it('calls a wrong password a mismatch for that user', async () => {
    const a = start();
    expect(await a.authenticate(basic('alice', 'wrong'))).toEqual({ ok: false, reason: 'mismatch', user: 'alice' });
    expect(await a.authenticate(basic('carol', 'wrong'))).toEqual({ ok: false, reason: 'mismatch', user: 'carol' });
    expect(await a.authenticate(basic('dave', 'wrong'))).toEqual({ ok: false, reason: 'mismatch', user: 'dave' });
  });

  it('compares user names exactly', async () => {
    const a = start();
    expect(await a.authenticate(basic('Alice', alice.password))).toMatchObject({ ok: false, reason: 'mismatch' });
    expect(await a.authenticate(basic('alice ', alice.password))).toMatchObject({ ok: false, reason: 'mismatch' });
  });

  it('reports missing and malformed headers without verifying anything', async () => {
    const a = start();
    expect(await a.authenticate(undefined)).toEqual({ ok: false, reason: 'missing', user: null });
    expect(await a.authenticate('Bearer abc')).toEqual({ ok: false, reason: 'malformed', user: null });
    expect(await a.authenticate('Basic !!!!')).toEqual({ ok: false, reason: 'malformed', user: null });
    expect(a.stats()).toEqual({ verifications: 0, cacheHits: 0 });
  });

  it('refuses user names over 256 bytes and passwords over 1 KiB before any work, and takes them at the limit', async () => {
    const longPassword = 'p'.repeat(1024);
    const longUser = 'u'.repeat(256);
    const a = start({ users: new Map([[longUser, { kind: 'apr1', hash: apr1(longPassword, 'salt1234') }]]) });
    expect(await a.authenticate(basic(longUser, longPassword))).toMatchObject({ ok: true, user: longUser });
    const verified = a.stats().verifications;
    expect(await a.authenticate(basic(longUser, `${longPassword}p`))).toEqual({ ok: false, reason: 'malformed', user: null });
    expect(await a.authenticate(basic(`${longUser}u`, longPassword))).toEqual({ ok: false, reason: 'malformed', user: null });
    // Bytes, not characters: 129 two-byte characters are 258 bytes.
    expect(await a.authenticate(basic('é'.repeat(129), 'pw'))).toEqual({ ok: false, reason: 'malformed', user: null });
    expect(await a.authenticate(basic('u', 'p'.repeat(24_000)))).toEqual({ ok: false, reason: 'malformed', user: null });
    expect(a.stats().verifications).toBe(verified);
  });

  it('accepts the scheme in any case', async () => {
    const a = start();
    expect(await a.authenticate(basic('alice', alice.password).replace('Basic', 'bASIC'))).toMatchObject({ ok: true });
  });
});

describe('authenticate: unknown users', () => {
  it('treats an unknown user as a mismatch that still costs one verification', async () => {
    const a = start();
    expect(await a.authenticate(basic('mallory', 'guess'))).toEqual({ ok: false, reason: 'mismatch', user: 'mallory' });
    expect(a.stats().verifications).toBe(1);
    expect(await a.authenticate(basic('trudy', 'guess'))).toEqual({ ok: false, reason: 'mismatch', user: 'trudy' });
    expect(a.stats().verifications).toBe(2);
  });

  it('does the same when the file has no bcrypt user, or no user at all', async () => {
    for (const users of [usersOf('duplicates.htpasswd'), new Map()]) {
      const a = start({ users });
      expect(await a.authenticate(basic('mallory', 'guess'))).toEqual({ ok: false, reason: 'mismatch', user: 'mallory' });
      expect(a.stats().verifications).toBe(1);
      await a.close();
    }
  });

  it('sends unknown users down the same bcrypt queue as known ones', async () => {
    const a = start({ workers: 1, maxQueue: 0 });
    const running = a.authenticate(basic('bob', bob.password));
    expect(isGatewayError(await errorOf(a.authenticate(basic('bob', 'other'))), 'AUTH_BUSY')).toBe(true);
    expect(isGatewayError(await errorOf(a.authenticate(basic('mallory', 'guess'))), 'AUTH_BUSY')).toBe(true);
    expect(await running).toMatchObject({ ok: true });
  });
});

describe('authenticate: cache and sharing', () => {
  it('verifies 20 concurrent identical requests once', async () => {
    const a = start();
    const header = basic('bob', bob.password);
    const results = await Promise.all(Array.from({ length: 20 }, () => a.authenticate(header)));
    expect(results.every((r) => r.ok && r.user === 'bob')).toBe(true);
    expect(a.stats()).toEqual({ verifications: 1, cacheHits: 0 });
  });

  it('answers a repeated success from the cache', async () => {
    const a = start();
    const header = basic('alice', alice.password);
    expect(await a.authenticate(header)).toEqual({ ok: true, user: 'alice', cached: false });
    expect(await a.authenticate(header)).toEqual({ ok: true, user: 'alice', cached: true });
    expect(a.stats()).toEqual({ verifications: 1, cacheHits: 1 });
  });

  it('never caches a failure', async () => {
    const a = start();
    const header = basic('alice', 'wrong');
    await a.authenticate(header);
    await a.authenticate(header);
    expect(a.stats()).toEqual({ verifications: 2, cacheHits: 0 });
  });

  it('forgets cached successes when the users are replaced', MANY_VERIFICATIONS, async () => {
    const a = start();
    const header = basic('alice', alice.password);
    await a.authenticate(header);
    a.replaceUsers(USERS);
    expect(await a.authenticate(header)).toEqual({ ok: true, user: 'alice', cached: false });
    expect(a.stats()).toEqual({ verifications: 2, cacheHits: 0 });
    a.replaceUsers(new Map([...USERS].filter(([user]) => user !== 'alice')));
    expect(await a.authenticate(header)).toEqual({ ok: false, reason: 'mismatch', user: 'alice' });
  });

  it('does not let a verification started before replaceUsers answer or be cached after it', async () => {
    const a = start();
    const header = basic('bob', bob.password);
    const before = a.authenticate(header);
    a.replaceUsers(new Map([...USERS].filter(([user]) => user !== 'bob')));
    expect(await a.authenticate(header)).toEqual({ ok: false, reason: 'mismatch', user: 'bob' });
    expect(await before).toMatchObject({ ok: true }); // asked before the change
    expect(await a.authenticate(header)).toEqual({ ok: false, reason: 'mismatch', user: 'bob' });
  });
});

describe('authenticate: faults', () => {
  it('rejects with AUTH_BUSY when too many verifications wait', async () => {
    const a = start({ workers: 1, maxQueue: 1 });
    const accepted = [a.authenticate(basic('bob', bob.password)), a.authenticate(basic('bob', 'second'))];
    expect(isGatewayError(await errorOf(a.authenticate(basic('bob', 'third'))), 'AUTH_BUSY')).toBe(true);
    expect((await Promise.all(accepted)).map((r) => r.ok)).toEqual([true, false]);
  });

  it('rejects with AUTH_WORKER_FAILED after close()', async () => {
    const a = start();
    await a.close();
    expect(isGatewayError(await errorOf(a.authenticate(basic('alice', alice.password))), 'AUTH_WORKER_FAILED')).toBe(true);
  });

  it('never returns or throws the password', async () => {
    const password = 'correct-hunter2-secret';
    // Every user as costly as bob: a cheaper one would take a second thread for its dummy check.
    const costly = USERS.get('bob')!;
    const a = start({ workers: 1, maxQueue: 0, users: new Map([['bob', costly], ['zed', costly], ['alice', costly]]) });
    const seen: unknown[] = [];
    const busy = a.authenticate(basic('bob', bob.password));
    for (const header of [basic('zed', password), basic('nobody', password)]) seen.push(await errorOf(a.authenticate(header)));
    await busy;
    for (const header of [basic('alice', password), basic('nobody', password), `Basic ${password}`, `Basic ${Buffer.from(password).toString('base64')}`]) {
      seen.push(await a.authenticate(header));
    }
    await a.close();
    seen.push(await errorOf(a.authenticate(basic('alice', password))), a.stats());
    for (const item of seen) {
      const text = item instanceof Error ? `${item.message} ${item.stack} ${String(item.cause)}` : JSON.stringify(item);
      expect(text).not.toContain(password);
      expect(text).not.toContain(Buffer.from(password).toString('base64'));
    }
  });
});
