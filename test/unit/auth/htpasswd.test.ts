import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatHtpasswdProblem, parseHtpasswd, readHtpasswdFile } from '../../../src/auth/htpasswd.js';
import { fixturePath, fixtureText, fixtureUsers } from '../../helpers/htpasswd-fixtures.js';

// Folders the tests make, removed when they are done.
const made: string[] = [];
const scratch = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'htpasswd-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** [line, user] of each problem, for compact assertions. */
const where = (problems: ReadonlyArray<{ line: number; user: string | null }>) => problems.map((p) => [p.line, p.user]);

describe('parseHtpasswd on files written by htpasswd', () => {
  it('reads every user with its hash kind and no problems', () => {
    const { users, problems } = parseHtpasswd(fixtureText('users.htpasswd'), 'users.htpasswd');
    expect(problems).toEqual([]);
    expect([...users.keys()]).toEqual([...fixtureUsers('users.htpasswd').keys()]);
    expect(users.get('alice')).toMatchObject({ kind: 'bcrypt', cost: 5 });
    expect(users.get('bob')).toMatchObject({ kind: 'bcrypt', cost: 10 });
    expect(users.get('carol')).toMatchObject({ kind: 'apr1' });
    expect(users.get('dave')).toMatchObject({ kind: 'sha1' });
  });

  it('reads CRLF files without carrying the CR into the hash', () => {
    const text = fixtureText('crlf.htpasswd');
    expect(text).toContain('\r\n');
    const { users, problems } = parseHtpasswd(text, 'crlf.htpasswd');
    expect(problems).toEqual([]);
    expect(users.get('alice')?.hash).toBe(fixtureUsers('crlf.htpasswd').get('alice')?.hash);
    expect(users.get('carol')?.hash.endsWith('\r')).toBe(false);
  });

  it('ignores a UTF-8 byte order mark instead of making it part of the first line', () => {
    const text = fixtureText('bom.htpasswd');
    expect(text.charCodeAt(0)).toBe(0xfeff);
    const { users, problems } = parseHtpasswd(text, 'bom.htpasswd');
    expect(problems).toEqual([]);
    expect([...users.keys()]).toEqual(['alice', 'dave']);
  });

  it('parses a file of only comments and blank lines as no users and no problems', () => {
    expect(parseHtpasswd('# nobody yet\n\n   \n\t# still nobody\n', 'f')).toEqual({ users: new Map(), problems: [] });
  });
});

describe('parseHtpasswd reports unusable lines', () => {
  it('names each unsupported hash kind on its own line', () => {
    const { users, problems } = parseHtpasswd(fixtureText('unsupported.htpasswd'), 'unsupported.htpasswd');
    expect([...users.keys()]).toEqual(['ok']);
    expect(where(problems)).toEqual([
      [2, 'des'],
      [3, 'nginxplain'],
      [4, 'failed'],
      [5, 'plain'],
      [6, 'md5crypt'],
      [7, 'ssha'],
      [8, 'bcrypt2x'],
      [9, 'argon'],
      [10, 'yes'],
      [11, 'ldapmd5'],
    ]);
    const reasons = problems.map((p) => p.reason);
    expect(reasons[0]).toMatch(/DES crypt/);
    expect(reasons[1]).toMatch(/plain-text password \(\{PLAIN\}\)/);
    expect(reasons[2]).toMatch(/locked or its hash was never made/);
    expect(reasons[3]).toMatch(/plain text/);
    expect(reasons[4]).toMatch(/MD5-crypt/);
    expect(reasons[5]).toMatch(/\{SSHA\}/);
    expect(reasons[6]).toMatch(/\$2x\$/);
    expect(reasons[7]).toMatch(/Argon2/);
    expect(reasons[8]).toMatch(/yescrypt/);
    expect(reasons[9]).toMatch(/\{MD5\}/);
    for (const reason of reasons) expect(reason).toMatch(/htpasswd -B/);
  });

  it('calls truncated and altered hashes damaged, line by line', () => {
    const { users, problems } = parseHtpasswd(fixtureText('truncated.htpasswd'), 'truncated.htpasswd');
    expect(users.size).toBe(0);
    expect(where(problems)).toEqual([
      [2, 'short-bcrypt'],
      [3, 'short-apr1'],
      [4, 'short-sha'],
      [5, 'cost32'],
      [6, 'bad-salt'],
      [7, 'long-bcrypt'],
      [8, 'dollar-only'],
    ]);
    expect(problems[3]?.reason).toMatch(/cost 32/);
    for (const p of problems.filter((_, i) => i !== 3)) expect(p.reason).toMatch(/truncated or damaged/);
  });

  it('reports structural mistakes and trims each line as a whole, as Apache does', () => {
    const { users, problems } = parseHtpasswd(fixtureText('malformed.htpasswd'), 'malformed.htpasswd');
    expect([...users.keys()]).toEqual(['padded']);
    expect(where(problems)).toEqual([
      [2, null],
      [3, null],
      [4, 'nohash'],
      [5, 'spaced '],
      [6, 'gap'],
      [11, 'colon'],
    ]);
    const reasons = problems.map((p) => p.reason);
    expect(reasons[0]).toMatch(/no ":"/);
    expect(reasons[1]).toMatch(/user name .* is empty/);
    expect(reasons[2]).toMatch(/no password hash/);
    expect(reasons[3]).toMatch(/ends with whitespace/);
    expect(reasons[4]).toMatch(/whitespace/);
    expect(reasons[5]).toMatch(/not a recognised password hash/);
  });

  it('reports a duplicated user with both line numbers and keeps the first entry, as Apache does', () => {
    const text = fixtureText('duplicates.htpasswd');
    const { users, problems } = parseHtpasswd(text, 'duplicates.htpasswd');
    expect([...users.keys()]).toEqual(['alice', 'bob']);
    expect(users.get('alice')?.hash).toBe(text.split('\n')[1]?.slice('alice:'.length));
    expect(where(problems)).toEqual([
      [5, 'alice'],
      [6, 'alice'],
    ]);
    expect(problems[0]?.reason).toMatch(/lines 2 and 5/);
    expect(problems[1]?.reason).toMatch(/lines 2 and 6/);
  });

  it('refuses a user name longer than any client may send (256 bytes), without repeating it', () => {
    const sha = '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=';
    const long = 'a'.repeat(257);
    const { users, problems } = parseHtpasswd(`${'b'.repeat(256)}:${sha}\n${long}:${sha}\n`, 'long.htpasswd');
    expect([...users.keys()]).toEqual(['b'.repeat(256)]);
    expect(where(problems)).toEqual([[2, null]]);
    expect(problems[0]!.reason).toMatch(/257 bytes long.*over 256 bytes/);
    expect(formatHtpasswdProblem(problems[0]!)).not.toContain(long);
  });

  it('never repeats a hash in a problem', () => {
    for (const name of ['unsupported.htpasswd', 'truncated.htpasswd', 'malformed.htpasswd', 'duplicates.htpasswd']) {
      const text = fixtureText(name);
      const { problems } = parseHtpasswd(text, name);
      for (const p of problems) {
        const hash = text.split('\n')[p.line - 1]!.trim().split(':').slice(1).join(':').trim();
        if (hash !== '') expect(formatHtpasswdProblem(p)).not.toContain(hash);
      }
    }
  });
});

describe('formatHtpasswdProblem', () => {
  it('gives file, line, quoted user and reason on one line', () => {
    const text = 'alice:$2y$05$jWfUFwapbh2o4KPb41AQ.u2wW/ZAKo8k2vV9i7DEA/xg0yCZICg5G\n# x\nbob:$y$j9T$salt$abc\n';
    const { problems } = parseHtpasswd(text, './htpasswd');
    expect(problems.map(formatHtpasswdProblem)).toEqual([
      './htpasswd:3: user "bob": yescrypt ($y$) is not supported; re-create the entry with `registry-gateway htpasswd add <user> --file <file>` or Apache\'s `htpasswd -B <file> <user>`',
    ]);
  });

  it('leaves the user out when none could be read, and the line out for file-level problems', () => {
    expect(formatHtpasswdProblem({ file: 'f', line: 2, user: null, reason: 'r' })).toBe('f:2: r');
    expect(formatHtpasswdProblem({ file: 'f', line: 0, user: null, reason: 'r' })).toBe('f: r');
  });

  it('escapes odd characters in user names so one problem stays one line', () => {
    expect(formatHtpasswdProblem({ file: 'f', line: 1, user: 'a\nb"', reason: 'r' })).toBe('f:1: user "a\\nb\\"": r');
  });
});

describe('readHtpasswdFile', () => {
  it('reads a file from disk', async () => {
    const { users, problems } = await readHtpasswdFile(fixturePath('users.htpasswd'));
    expect(problems).toEqual([]);
    expect(users.size).toBe(fixtureUsers('users.htpasswd').size);
  });

  it('turns a missing file into one problem that says how to create it', async () => {
    const file = join(scratch(), 'absent');
    const { users, problems } = await readHtpasswdFile(file);
    expect(users.size).toBe(0);
    expect(problems).toEqual([{ file, line: 0, user: null, reason: `the htpasswd file does not exist; create it with \`registry-gateway htpasswd add <user> --file ${file}\` (under docker compose: \`docker compose run --rm gateway htpasswd add <user>\`), or fix the path` }]);
    expect(formatHtpasswdProblem(problems[0]!)).toMatch(new RegExp(`^${file}: `));
  });

  it('quotes a missing file\'s path for the shell when it needs it', async () => {
    const file = join(scratch(), "my users's file");
    const { problems } = await readHtpasswdFile(file);
    expect(problems[0]!.reason).toContain(`\`registry-gateway htpasswd add <user> --file '${file.replace("'", "'\\''")}'\``);
  });

  it('turns a directory into one problem', async () => {
    const dir = scratch();
    const { problems } = await readHtpasswdFile(dir);
    expect(problems).toEqual([{ file: dir, line: 0, user: null, reason: expect.stringMatching(/directory/) }]);
  });

  // (Permission errors cannot be produced here: tests run as root, which reads any file.)
  it('turns a directory given as the file into one problem saying so', async () => {
    const dir = scratch();
    const { problems } = await readHtpasswdFile(dir);
    expect(problems).toEqual([{ file: dir, line: 0, user: null, reason: expect.stringMatching(/is a directory/) }]);
  });

  it('reports a line that is not UTF-8 instead of inventing a user nobody can type', async () => {
    const { users, problems } = await readHtpasswdFile(fixturePath('latin1.htpasswd'));
    expect([...users.keys()]).toEqual(['ok1', 'ok2']);
    expect(where(problems)).toEqual([[2, null]]);
    expect(problems[0]?.reason).toMatch(/not valid UTF-8/);
  });
});
