import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { apr1, identifyHash, verifyApr1, verifySha1 } from '../../../src/auth/hashes.js';
import { requireTool } from '../../helpers/tools.js';
import { fixtureUser, fixtureUsers } from '../../helpers/htpasswd-fixtures.js';

// apache-md5 is CommonJS whose typings claim an ES default export; require() sidesteps that.
const aprMd5 = createRequire(import.meta.url)('apache-md5') as (password: string, salt?: string) => string;

const users = fixtureUsers('users.htpasswd');
const hashOf = (user: string) => fixtureUser('users.htpasswd', user).hash;
const passwordOf = (user: string) => fixtureUser('users.htpasswd', user).password;

describe('identifyHash on hashes written by Apache htpasswd', () => {
  it('recognises bcrypt with its cost, apr1 and {SHA}', () => {
    expect(identifyHash(hashOf('alice'))).toEqual({ kind: 'bcrypt', cost: 5, hash: hashOf('alice') });
    expect(identifyHash(hashOf('bob'))).toEqual({ kind: 'bcrypt', cost: 10, hash: hashOf('bob') });
    expect(identifyHash(hashOf('carol'))).toEqual({ kind: 'apr1', hash: hashOf('carol') });
    expect(identifyHash(hashOf('dave'))).toEqual({ kind: 'sha1', hash: hashOf('dave') });
  });

  it('accepts every user of the fixture file', () => {
    for (const { hash } of users.values()) expect(identifyHash(hash)).not.toHaveProperty('error');
  });

  it('accepts the $2a$ and $2b$ spellings of bcrypt and apr1 salts shorter than 8', () => {
    const bcrypt = hashOf('alice');
    expect(identifyHash(`$2a$${bcrypt.slice(4)}`)).toMatchObject({ kind: 'bcrypt', cost: 5 });
    expect(identifyHash(`$2b$${bcrypt.slice(4)}`)).toMatchObject({ kind: 'bcrypt', cost: 5 });
    expect(identifyHash(apr1('pw', 'ab'))).toMatchObject({ kind: 'apr1' });
  });
});

describe('identifyHash refuses what it cannot verify, saying what it is', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['empty', '', /empty/],
    ['nginx plain text', '{PLAIN}plain-text-pass', /^a plain-text password \(\{PLAIN\}\) is not supported; re-create the entry with `registry-gateway htpasswd add <user> --file <file>` or Apache's `htpasswd -B <file> <user>`$/],
    ['locked SHA-512 crypt', '!$6$MSfGMFlrAPjgqKlA$PSn1r1oF5DjJDAQM0EXD0VKWsy2PvLMe3u0bMK3P3H30c4tZQbxtHDkrUWnyFpEzZB01B4LRqQjSfhxqaA9.d0', /locked/],
    ['MD5-crypt', '$1$lfKhmmCq$NYxzJK52gpAMOGgOpGBje.', /MD5-crypt \(\$1\$\)/],
    ['$2x$ bcrypt', '$2x$05$VnG67z.kg24GHTxe8a4siO6Ti0UeMixTzmfIQuyNmxd41kD3wjIGC', /\$2x\$/],
    ['original $2$ bcrypt', '$2$05$VnG67z.kg24GHTxe8a4siO6Ti0UeMixTzmfIQuyNmxd41kD3wjIGC', /bcrypt with the \$2\$ prefix/],
    ['salted SHA-1', '{SSHA}pOi2ANT2fSV3UoPgoCVr0y1VJI5wZXBwZXI=', /\{SSHA\}/],
    ['DES crypt', 'L5NULQB2JKXOs', /DES crypt/],
    ['plain text', 'plain-text-pass', /plain text/],
    ['unknown $id$', '$sha1$40000$jtNX3nZ2$hBNaIXkt4wBI2o5rsi8KejSjNqIq', /\$sha1\$ hash format/],
    ['unknown {scheme}', '{MD5}X03MO1qnZdYdgyfeuILPmQ==', /\{MD5\} hash format/],
    ['leading space', ' $apr1$WquWE4jz$DWnvj6NllN1p5fSCIQLBl1', /whitespace/],
  ];
  for (const [name, hash, reason] of cases) {
    it(`${name}`, () => {
      const result = identifyHash(hash);
      expect(result).toEqual({ error: expect.stringMatching(reason) });
      if (hash !== '') expect(JSON.stringify(result)).not.toContain(hash.trim());
    });
  }

  it('calls truncated or altered hashes damaged instead of accepting them', () => {
    const bcrypt = hashOf('alice');
    const damaged = [
      bcrypt.slice(0, 59),
      `${bcrypt}x`,
      `$2y$32${bcrypt.slice(6)}`,
      `$2y$03${bcrypt.slice(6)}`,
      '$2y$',
      hashOf('carol').slice(0, 30),
      `${hashOf('carol')}x`,
      '$apr1$toolongsalt$DWnvj6NllN1p5fSCIQLBl1',
      hashOf('dave').slice(0, 24),
      '{SHA}kdgf3KFGc91kyYUNNzDeWcLnSO8',
    ];
    for (const hash of damaged) {
      const result = identifyHash(hash);
      expect(result, hash).toHaveProperty('error');
      expect(JSON.stringify(result)).not.toContain(hash);
    }
  });

  it('refuses hashes whose unused trailing bits are set, which no password could ever match', () => {
    const bcrypt = hashOf('alice');
    // The last salt character of bcrypt only carries 2 bits: '.', 'O', 'e' or 'u'.
    const saltEnd = bcrypt[28]!;
    const altered = `${bcrypt.slice(0, 28)}${saltEnd === 'a' ? 'b' : 'a'}${bcrypt.slice(29)}`;
    expect(identifyHash(altered)).toEqual({ error: expect.stringMatching(/damaged/) });
    const apr = hashOf('carol');
    expect(identifyHash(`${apr.slice(0, -1)}z`)).toEqual({ error: expect.stringMatching(/damaged/) });
    expect(identifyHash('{SHA}kdgf3KFGc91kyYUNNzDeWcLnSO9=')).toEqual({ error: expect.stringMatching(/damaged/) });
  });
});

describe('verifyApr1', () => {
  for (const user of ['carol', 'frank', 'judy']) {
    it(`accepts ${user}'s password as set with htpasswd -m, and rejects a near miss`, () => {
      const password = passwordOf(user);
      expect(verifyApr1(password, hashOf(user))).toBe(true);
      expect(verifyApr1(`${password}x`, hashOf(user))).toBe(false);
      expect(verifyApr1(password.slice(0, -1), hashOf(user))).toBe(false);
    });
  }

  it('does not truncate long passwords (unlike bcrypt)', () => {
    const password = passwordOf('judy');
    expect(password.length).toBeGreaterThan(72);
    expect(verifyApr1(password.slice(0, 72), hashOf('judy'))).toBe(false);
  });

  it('hashes ASCII passwords exactly like the apache-md5 package', () => {
    for (const password of ['', 'a', 'password', 'x'.repeat(17), 'with space: and colon', '~!@#$%^&*()']) {
      for (const salt of ['s', 'abcdefgh', './09AZaz']) {
        expect(apr1(password, salt)).toBe(aprMd5(password, `$apr1$${salt}$`));
      }
    }
  });

  it('agrees with Apache htpasswd on UTF-8 passwords', () => {
    const htpasswd = requireTool('htpasswd');
    for (const password of ['é', 'naïve café', '日本語のパスワード', '🔑🔑', 'ü'.repeat(40)]) {
      const line = execFileSync(htpasswd, ['-nbm', 'u', password], { encoding: 'utf8' }).split('\n')[0]!;
      const hash = line.slice('u:'.length);
      expect(verifyApr1(password, hash), password).toBe(true);
      // Bytes are compared as sent, without Unicode normalisation, as Apache does.
      if (password.normalize('NFD') !== password) expect(verifyApr1(password.normalize('NFD'), hash)).toBe(false);
    }
  });
});

describe('verifySha1', () => {
  for (const user of ['dave', 'heidi']) {
    it(`accepts ${user}'s password as set with htpasswd -s, and rejects a near miss`, () => {
      expect(verifySha1(passwordOf(user), hashOf(user))).toBe(true);
      expect(verifySha1(`${passwordOf(user)} `, hashOf(user))).toBe(false);
    });
  }
});
