// Every format Apache's htpasswd writes, and every kind of line the gateway refuses, as the parser,
// the hash checks and the authenticator see them (fixtures made by test/fixtures/htpasswd/make-fixtures.sh).
import { afterEach, describe, expect, it } from 'vitest';
import { createAuthenticator, type Authenticator } from '../../../src/auth/authenticator.js';
import { costliestHash, identifyHash, SHA_CRYPT_MAX_ACCEPTED_ROUNDS, verificationCost } from '../../../src/auth/hashes.js';
import { verifyPassword } from '../../../src/auth/hash-password.js';
import { formatHtpasswdProblem, parseHtpasswd } from '../../../src/auth/htpasswd.js';
import type { PasswordHash } from '../../../src/auth/types.js';
import { isGatewayError } from '../../../src/errors.js';
import { basic, fixtureText, fixtureUser, fixtureUsers } from '../../helpers/htpasswd-fixtures.js';

const FORMATS = fixtureUsers('formats.htpasswd');
const formatsFile = () => parseHtpasswd(fixtureText('formats.htpasswd'), 'formats.htpasswd');
const SHA512 = fixtureUser('formats.htpasswd', 'sha512').hash;
const SHA256 = fixtureUser('formats.htpasswd', 'sha256').hash;

describe('files of every format htpasswd writes', () => {
  it('load with no problems, each user with the kind and cost it was written with', () => {
    const { users, problems } = formatsFile();
    expect(problems).toEqual([]);
    expect([...users.keys()]).toEqual([...FORMATS.keys()]);
    expect(users.get('bcrypt5')).toMatchObject({ kind: 'bcrypt', cost: 5 });
    expect(users.get('bcrypt10')).toMatchObject({ kind: 'bcrypt', cost: 10 });
    expect(users.get('apr1')).toMatchObject({ kind: 'apr1' });
    expect(users.get('sha1')).toMatchObject({ kind: 'sha1' });
    expect(users.get('sha256')).toMatchObject({ kind: 'sha-crypt', digest: 'sha256', rounds: 5000 });
    expect(users.get('sha512')).toMatchObject({ kind: 'sha-crypt', digest: 'sha512', rounds: 5000 });
    expect(users.get('sha256r1000')).toMatchObject({ kind: 'sha-crypt', digest: 'sha256', rounds: 1000 });
    expect(users.get('sha512r20000')).toMatchObject({ kind: 'sha-crypt', digest: 'sha512', rounds: 20000 });
  });

  it('load the same with CRLF line ends and a byte order mark', () => {
    const text = `\uFEFF${fixtureText('formats.htpasswd').replace(/\n/g, '\r\n')}`;
    const { users, problems } = parseHtpasswd(text, 'crlf-bom.htpasswd');
    expect(problems).toEqual([]);
    expect(users).toEqual(formatsFile().users);
  });

  it('let every user in with their password, through the verification threads', async () => {
    const auth = createAuthenticator({ users: formatsFile().users });
    try {
      for (const { user, password } of FORMATS.values()) {
        expect(await auth.authenticate(basic(user, password)), user).toEqual({ ok: true, user, cached: false });
        expect(await auth.authenticate(basic(user, `${password}!`)), user).toMatchObject({ ok: false, reason: 'mismatch' });
      }
    } finally {
      await auth.close();
    }
  });

  it('answer `registry-gateway htpasswd verify` the same way', async () => {
    for (const { user, hash, password } of FORMATS.values()) {
      const identified = identifyHash(hash) as PasswordHash;
      expect(await verifyPassword(password, identified), user).toBe(true);
      expect(await verifyPassword(`${password}!`, identified), user).toBe(false);
    }
  });
});

describe('identifyHash on SHA-crypt', () => {
  const at = (rounds: string) => SHA256.replace('$5$', `$5$rounds=${rounds}$`);

  it(`accepts rounds from 1000 up to ${SHA_CRYPT_MAX_ACCEPTED_ROUNDS}`, () => {
    expect(identifyHash(at('1000'))).toMatchObject({ kind: 'sha-crypt', rounds: 1000 });
    expect(identifyHash(at(String(SHA_CRYPT_MAX_ACCEPTED_ROUNDS)))).toMatchObject({ rounds: SHA_CRYPT_MAX_ACCEPTED_ROUNDS });
  });

  it('refuses more rounds than that, saying how to re-hash', () => {
    const result = identifyHash(at(String(SHA_CRYPT_MAX_ACCEPTED_ROUNDS + 1)));
    expect(result).toEqual({ error: expect.stringMatching(/rounds=1000001, more than the 1000000 the gateway accepts.*htpasswd -2/) });
  });

  it('refuses rounds crypt(3) would never write, since no password could match them', () => {
    for (const rounds of ['999', '0', '01000']) {
      expect(identifyHash(at(rounds)), rounds).toEqual({ error: expect.stringMatching(/never writes/) });
    }
  });

  it('calls short, long, bit-flipped and salt-less hashes damaged, without quoting them', () => {
    const last = (hash: string, c: string) => `${hash.slice(0, -1)}${c}`;
    const damaged = [
      SHA256.slice(0, -1),
      `${SHA256}A`,
      SHA512.slice(0, -1),
      last(SHA512, 'z'), // the last character of a SHA-512 digest carries 2 bits: one of ./01
      last(SHA256, 'z'), // ... of SHA-256, 4 bits
      SHA512.replace(/^\$6\$[^$]+\$/, '$6$$'),
      SHA512.replace(/^\$6\$[^$]+\$/, '$6$seventeencharsxyz$'),
      '$5$',
      '$6$rounds=5000$',
      '$6$rounds=5000$salt$',
    ];
    for (const hash of damaged) {
      const result = identifyHash(hash);
      expect(result, hash).toEqual({ error: expect.stringMatching(/SHA-(256|512) crypt .* truncated or damaged/) });
      const digest = hash.split('$').at(-1)!;
      if (digest.length > 8) expect(JSON.stringify(result)).not.toContain(digest);
    }
  });
});

describe('the refused-lines fixture', () => {
  const text = fixtureText('refused.htpasswd');
  const { users, problems } = parseHtpasswd(text, 'refused.htpasswd');

  it('keeps only the good user and names every other line with its user and what to do', () => {
    expect([...users.keys()]).toEqual(['ok']);
    const expected: Array<[number, string, RegExp]> = [
      [2, 'des', /DES crypt hash \(`htpasswd -d`/],
      [3, 'plain', /plain text \(`htpasswd -p`\) is not supported/],
      [4, 'bcrypt2x', /\$2x\$ prefix/],
      [5, 'cost99', /bcrypt cost 99 is outside the valid range 04-31/],
      [6, 'cost03', /bcrypt cost 03 is outside/],
      [7, 'short-sha256', /SHA-256 crypt \(\$5\$\) hash is truncated or damaged/],
      [8, 'short-sha512', /SHA-512 crypt \(\$6\$\) hash is truncated or damaged/],
      [9, 'empty', /no password hash after ":"/],
      [10, 'rounds999', /rounds=999, which crypt\(3\) never writes/],
      [11, 'rounds2m', /rounds=2000000, more than the 1000000/],
      [12, 'failed', /never made/],
      [13, 'locked', /locked/],
      [14, 'rounds-zero', /rounds=01000, which crypt\(3\) never writes/],
      [16, 'ok', /defined twice, on lines 15 and 16/],
      [17, 'long-salt', /truncated or damaged/],
    ];
    expect(problems.map((p) => [p.line, p.user])).toEqual(expected.map(([line, user]) => [line, user]));
    problems.forEach((p, i) => expect(p.reason, `line ${p.line}`).toMatch(expected[i]![2]));
    for (const p of problems.filter((p) => p.line !== 16 && p.line !== 9)) {
      expect(p.reason, `line ${p.line}`).toMatch(/registry-gateway htpasswd add <user>.*htpasswd -B/);
    }
  });

  it('never repeats a hash, or a plain-text password, in what it reports', () => {
    const lines = text.split('\n');
    for (const p of problems) {
      const secret = lines[p.line - 1]!.slice(lines[p.line - 1]!.indexOf(':') + 1);
      if (secret.length > 2) expect(formatHtpasswdProblem(p)).not.toContain(secret);
    }
  });
});

describe('the dummy hash unknown users are checked against', () => {
  const users = formatsFile().users;
  const pick = (...names: string[]) => names.map((n) => users.get(n)!);

  it('imitates the entry that is the most expensive to check, whatever its kind', () => {
    expect(costliestHash(pick('sha1', 'apr1', 'sha256', 'bcrypt5'))).toMatchObject({ kind: 'sha-crypt', rounds: 5000 });
    expect(costliestHash(pick('sha512', 'sha512r20000', 'bcrypt5'))).toMatchObject({ kind: 'sha-crypt', rounds: 20000 });
    expect(costliestHash(pick('sha512r20000', 'bcrypt10', 'apr1'))).toMatchObject({ kind: 'bcrypt', cost: 10 });
    expect(costliestHash(pick('sha1', 'apr1'))).toMatchObject({ kind: 'apr1' });
    expect(costliestHash([])).toBeNull();
  });

  it('ranks costs as measured: bcrypt doubles per cost step, SHA-crypt grows with its rounds', () => {
    const [bcrypt5, bcrypt10, sha256r1000, apr1] = pick('bcrypt5', 'bcrypt10', 'sha256r1000', 'apr1');
    expect(verificationCost(bcrypt10!)).toBe(32 * verificationCost(bcrypt5!));
    expect(verificationCost(sha256r1000!)).toBe(verificationCost(apr1!)); // both ~1000 hash calls
  });

  let auth: Authenticator | undefined;
  afterEach(() => auth?.close());

  it('for a file of SHA-crypt users, sends unknown users through the verification threads too', async () => {
    const sha = new Map([...users].filter(([, h]) => h.kind === 'sha-crypt'));
    auth = createAuthenticator({ users: sha, workers: 1, maxQueue: 0 });
    const running = auth.authenticate(basic('sha512r20000', FORMATS.get('sha512r20000')!.password));
    const unknown = await auth.authenticate(basic('mallory', 'guess')).catch((err: unknown) => err);
    expect(isGatewayError(unknown, 'AUTH_BUSY')).toBe(true);
    expect(await running).toMatchObject({ ok: true });
    expect(await auth.authenticate(basic('mallory', 'guess'))).toEqual({ ok: false, reason: 'mismatch', user: 'mallory' });
  });
});
