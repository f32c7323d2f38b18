import { afterAll, describe, expect, it } from 'vitest';
import { parseShaCryptSetting, shaCrypt } from '../../../src/auth/sha-crypt.js';
import { createWorkerPool } from '../../../src/auth/worker-pool.js';
import { fixtureUsers } from '../../helpers/htpasswd-fixtures.js';

// The test vectors published with Ulrich Drepper's specification ("Unix crypt using SHA-256 and
// SHA-512"): [setting, password, the string crypt(3) returns].
const LONG = 'a very much longer text to encrypt.  This one even stretches over morethan one line.';
const SPEC_VECTORS: ReadonlyArray<readonly [string, string, string]> = [
  ['$5$saltstring', 'Hello world!', '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'],
  ['$5$rounds=10000$saltstringsaltstring', 'Hello world!', '$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA'],
  ['$5$rounds=5000$toolongsaltstring', 'This is just a test', '$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5'],
  ['$5$rounds=1400$anotherlongsaltstring', LONG, '$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1'],
  ['$5$rounds=77777$short', 'we have a short salt string but not a short password', '$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/'],
  ['$5$rounds=123456$asaltof16chars..', 'a short string', '$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD'],
  ['$5$rounds=10$roundstoolow', 'the minimum number is still observed', '$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC'],
  ['$6$saltstring', 'Hello world!', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  ['$6$rounds=10000$saltstringsaltstring', 'Hello world!', '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ['$6$rounds=5000$toolongsaltstring', 'This is just a test', '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0'],
  ['$6$rounds=1400$anotherlongsaltstring', LONG, '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1'],
  ['$6$rounds=77777$short', 'we have a short salt string but not a short password', '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0'],
  ['$6$rounds=123456$asaltof16chars..', 'a short string', '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1'],
  ['$6$rounds=10$roundstoolow', 'the minimum number is still observed', '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.'],
];

describe('shaCrypt on the specification test vectors', () => {
  for (const [setting, password, expected] of SPEC_VECTORS) {
    it(`${setting} gives the published string`, () => {
      expect(shaCrypt(password, setting)).toBe(expected);
      // The stored string is its own setting: that is how a login is checked.
      expect(shaCrypt(password, expected)).toBe(expected);
    });
  }
});

describe('shaCrypt on hashes written by Apache htpasswd -2 and -5', () => {
  const users = [...fixtureUsers('formats.htpasswd').values()].filter((u) => /^\$[56]\$/.test(u.hash));

  it('covers $5$ and $6$, with and without rounds=, UTF-8, long and empty passwords', () => {
    expect(users.map((u) => u.user)).toEqual([
      'sha256', 'sha512', 'sha256r1000', 'sha512r20000', 'sha256utf8', 'sha512utf8', 'sha256long', 'sha512long', 'sha512empty',
    ]);
  });

  for (const { user, hash, password } of users) {
    it(`reproduces ${user}'s hash from its password and no other`, () => {
      expect(shaCrypt(password, hash)).toBe(hash);
      expect(shaCrypt(`${password}x`, hash)).not.toBe(hash);
      expect(shaCrypt(password === '' ? ' ' : password.slice(0, -1), hash)).not.toBe(hash);
    });
  }

  it('hashes the password as UTF-8 bytes, without Unicode normalisation', () => {
    const { hash, password } = users.find((u) => u.user === 'sha512utf8')!;
    expect(password.normalize('NFD')).not.toBe(password);
    expect(shaCrypt(password.normalize('NFD'), hash)).not.toBe(hash);
  });

  it('uses every byte of a long password (no 72-byte cut as in bcrypt)', () => {
    const { hash, password } = users.find((u) => u.user === 'sha512long')!;
    expect(password.length).toBeGreaterThan(72);
    expect(shaCrypt(password.slice(0, 72), hash)).not.toBe(hash);
  });
});

describe('parseShaCryptSetting reads settings as glibc does', () => {
  it('takes 5000 rounds when none are given, and keeps the salt', () => {
    expect(parseShaCryptSetting('$6$abc$digest')).toEqual({ id: '6', rounds: 5000, customRounds: false, salt: 'abc' });
  });

  it('clamps rounds into 1000..999999999 and cuts the salt to 16 characters', () => {
    expect(parseShaCryptSetting('$5$rounds=1$0123456789abcdefXYZ')).toEqual({ id: '5', rounds: 1000, customRounds: true, salt: '0123456789abcdef' });
    expect(parseShaCryptSetting('$5$rounds=99999999999$s').rounds).toBe(999_999_999);
  });

  it('reads rounds= as part of the salt when no $ follows the number', () => {
    expect(parseShaCryptSetting('$5$rounds=12')).toMatchObject({ rounds: 5000, customRounds: false, salt: 'rounds=12' });
  });

  it('refuses anything that is not $5$ or $6$', () => {
    expect(() => shaCrypt('pw', '$1$salt$')).toThrow(/\$5\$ or \$6\$/);
  });
});

describe('SHA-crypt in the verification threads', () => {
  const pool = createWorkerPool({ size: 1 });
  afterAll(() => pool.close());

  it('computes the same string off the main thread', async () => {
    for (const [setting, password, expected] of SPEC_VECTORS.slice(0, 2)) {
      expect(await pool.shaCrypt(password, setting)).toBe(expected);
    }
  });

  it('turns a bad setting into a failed task, not a dead thread', async () => {
    await expect(pool.shaCrypt('pw', 'not a setting')).rejects.toMatchObject({ code: 'AUTH_WORKER_FAILED' });
    expect(await pool.shaCrypt('Hello world!', '$5$saltstring')).toBe(SPEC_VECTORS[0]![2]);
  });
});
