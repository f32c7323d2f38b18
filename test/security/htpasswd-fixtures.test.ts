// htpasswd files as Apache's htpasswd writes them, in every format it has, through a real gateway
// and registry: users of the formats the gateway verifies get in with their password and only with
// it; a file with a line it cannot verify stops `serve` with the line number and no hash; a bad
// file on reload keeps the last good users.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { GATEWAY_BIN as BIN } from '../helpers/gateway-process.js';
import { fixturePath } from '../helpers/htpasswd-fixtures.js';
import { requireTool, run, runOk, type RunResult } from '../helpers/tools.js';
import { sleep } from '../helpers/wait.js';

const REFUSED_FIXTURE = fixturePath('refused.htpasswd');
const HTPASSWD = requireTool('htpasswd');

interface Format {
  user: string;
  password: string;
  flags: string[];
  /** What the line htpasswd writes must look like, so a change in htpasswd fails here first. */
  shape: RegExp;
}

const FORMATS: Format[] = [
  { user: 'bcrypt5', password: 'bcrypt five', flags: ['-B', '-C', '5'], shape: /^\$2y\$05\$.{53}$/ },
  { user: 'bcrypt10', password: 'bcrypt: ten', flags: ['-B', '-C', '10'], shape: /^\$2y\$10\$.{53}$/ },
  { user: 'bcrypt12', password: 'bcrypt twelve', flags: ['-B', '-C', '12'], shape: /^\$2y\$12\$.{53}$/ },
  { user: 'apr1', password: 'md5 apr1', flags: ['-m'], shape: /^\$apr1\$/ },
  { user: 'sha1', password: 'unsalted sha1', flags: ['-s'], shape: /^\{SHA\}/ },
  // No rounds= field (the default rounds); the random salt itself may well begin with an "r".
  { user: 'sha256', password: 'sha-256 crypt', flags: ['-2'], shape: /^\$5\$(?!rounds=)[^$]+\$.{43}$/ },
  { user: 'sha512', password: 'sha-512 crypt', flags: ['-5'], shape: /^\$6\$(?!rounds=)[^$]+\$.{86}$/ },
  { user: 'sha256-r1000', password: 'few rounds', flags: ['-2', '-r', '1000'], shape: /^\$5\$rounds=1000\$/ },
  { user: 'sha512-r20000', password: 'more rounds', flags: ['-5', '-r', '20000'], shape: /^\$6\$rounds=20000\$/ },
  { user: 'sha512-utf8', password: 'pässwörd 日本語 🔑', flags: ['-5'], shape: /^\$6\$/ },
];

/** One `user:hash` line, made by Apache's htpasswd. */
async function htpasswdLine(user: string, password: string, flags: string[]): Promise<string> {
  const { stdout } = await runOk(HTPASSWD, ['-nb', ...flags, user, password]);
  return stdout.split('\n')[0]!.replace(/\r$/, '');
}

const hashOf = (line: string) => line.slice(line.indexOf(':') + 1);
const lf = (lines: string[]) => `${lines.join('\n')}\n`;
const crlfWithBom = (lines: string[]) => `\uFEFF${lines.join('\r\n')}\r\n`;

let dir: string;
let pki: TestPki;
let formatLines: string[];
let lfStack: TestStack;
let crlfStack: TestStack;

/** A gateway in front of a real registry, reading `file` (the stack's own htpasswd goes unused). */
function stackReading(file: string): Promise<TestStack> {
  return startTestStack({ extraArgs: ['--htpasswd', file, '--login-attempts', '0'] });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-htpasswd-formats-'));
  pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
  formatLines = await Promise.all(FORMATS.map((f) => htpasswdLine(f.user, f.password, f.flags)));
  await writeFile(join(dir, 'lf'), lf(['# every format htpasswd writes', ...formatLines]));
  await writeFile(join(dir, 'crlf-bom'), crlfWithBom(['# every format htpasswd writes', ...formatLines]));
  [lfStack, crlfStack] = await Promise.all([stackReading(join(dir, 'lf')), stackReading(join(dir, 'crlf-bom'))]);
}, 120_000);

afterAll(async () => {
  await Promise.all([lfStack?.stop(), crlfStack?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

async function status(stack: TestStack, user: string, password: string): Promise<number> {
  return (await stack.request('/v2/', { auth: false, headers: { authorization: basicAuthorization(user, password) } })).status;
}

// Every login against these files costs at least one bcrypt cost-12 verification, on purpose: the
// gateway checks a cheaper hash (and an unknown user) alongside a dummy like the file's costliest
// (bcrypt12), so a refusal takes the same time for everyone; the first login against a file also
// makes that dummy hash. On a 2-core machine running another test run beside this one a cost-12
// check took up to 12 s, and three logins in a row, or the first login, outran the default 30 s.
// The time is not what these tests check: they get a budget per login they make, plus one for the
// dummy hash (and send independent logins at once), so a request that never comes back still fails.
const PER_LOGIN_MS = 20_000;
const forLogins = (n: number) => ({ timeout: (n + 1) * PER_LOGIN_MS });

describe('every format Apache htpasswd writes that the gateway verifies', () => {
  it('is written by htpasswd in the shape the gateway expects', () => {
    FORMATS.forEach((f, i) => expect(hashOf(formatLines[i]!), f.user).toMatch(f.shape));
  });

  for (const [index, format] of FORMATS.entries()) {
    it(`lets ${format.user} (htpasswd ${format.flags.join(' ')}) in with its password, from an LF file`, forLogins(1), async () => {
      expect(await status(lfStack, format.user, format.password)).toBe(200);
    });

    it(`refuses ${format.user} with a wrong password, a near miss or another user's password`, forLogins(3), async () => {
      const other = FORMATS[(index + 1) % FORMATS.length]!;
      // At once: the gateway's two verification threads share the work.
      const [wrong, nearMiss, others] = await Promise.all([
        status(lfStack, format.user, `${format.password}x`),
        status(lfStack, format.user, format.password.slice(0, -1)),
        status(lfStack, format.user, other.password),
      ]);
      expect(wrong).toBe(401);
      expect(nearMiss).toBe(401);
      expect(others).toBe(401);
    });
  }

  it('lets every user in from the same file with CRLF line ends and a byte order mark', forLogins(FORMATS.length + 1), async () => {
    // At once, as above; each answer is still checked against its own user.
    const statuses = await Promise.all(FORMATS.map((format) => status(crlfStack, format.user, format.password)));
    FORMATS.forEach((format, i) => expect(statuses[i], format.user).toBe(200));
    expect(await status(crlfStack, 'sha512', 'sha-512 crypt\r')).toBe(401);
  });

  it('refuses unknown users like wrong passwords', forLogins(2), async () => {
    expect(await status(lfStack, 'nobody', 'sha-512 crypt')).toBe(401);
    expect(await status(lfStack, 'SHA512', 'sha-512 crypt')).toBe(401);
  });

  it('keeps writing bcrypt when `registry-gateway htpasswd add` adds to such a file, leaving the other lines alone', async () => {
    const file = join(dir, 'add');
    const before = lf(formatLines);
    await writeFile(file, before);
    const env = { PATH: process.env.PATH ?? '' };
    await runOk(process.execPath, [BIN, 'htpasswd', 'add', 'newbie', '--file', file, '--password-stdin', '--cost', '4'], { input: 'newbie-pw\n', env });
    const after = await readFile(file, 'utf8');
    expect(after.startsWith(before)).toBe(true);
    expect(after.slice(before.length)).toMatch(/^newbie:\$2y\$04\$[./A-Za-z0-9]{53}\n$/);
    for (const user of ['sha256', 'sha512-r20000']) {
      const { password } = FORMATS.find((f) => f.user === user)!;
      const verify = await run(process.execPath, [BIN, 'htpasswd', 'verify', user, '--file', file, '--password-stdin'], { input: `${password}\n`, env });
      expect(verify.code, `${user}: ${verify.stderr}`).toBe(0);
    }
  });
});

/** `registry-gateway serve` with this htpasswd file; it must stop before listening. */
function serveWith(htpasswdFile: string): Promise<RunResult> {
  const args = ['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswdFile];
  return run(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '' }, timeoutMs: 30_000 });
}

/** Exit 2 with a plain list of problems: no stack trace, no JavaScript error name. */
function expectRefusedCleanly(result: RunResult): void {
  expect(result.code, result.stderr).toBe(2);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^registry-gateway: invalid configuration \(\d+ problems?\)\n/);
  expect(result.stderr).not.toMatch(/\n\s+at |Error:|node:internal/);
}

interface BadLine {
  name: string;
  line: () => Promise<string>;
  reason: RegExp;
}

const bcrypt5 = () => htpasswdLine('x', 'x', ['-B', '-C', '5']).then(hashOf);
const BAD_LINES: BadLine[] = [
  { name: 'crypt(3) DES (htpasswd -d)', line: () => htpasswdLine('bad', 'des-pass', ['-d']), reason: /DES crypt hash \(`htpasswd -d`/ },
  { name: 'plain text (htpasswd -p)', line: () => htpasswdLine('bad', 'plain-text-pass', ['-p']), reason: /plain text \(`htpasswd -p`\) is not supported/ },
  { name: 'bcrypt $2x$', line: async () => `bad:${(await bcrypt5()).replace('$2y$', '$2x$')}`, reason: /\$2x\$ prefix .* not supported/ },
  { name: 'bcrypt cost 99', line: async () => `bad:${(await bcrypt5()).replace('$05$', '$99$')}`, reason: /bcrypt cost 99 is outside the valid range 04-31/ },
  { name: 'a truncated SHA-512 crypt hash', line: async () => (await htpasswdLine('bad', 'pw', ['-5'])).slice(0, -5), reason: /SHA-512 crypt \(\$6\$\) hash is truncated or damaged/ },
  { name: 'a truncated bcrypt hash', line: async () => (await htpasswdLine('bad', 'pw', ['-B', '-C', '4'])).slice(0, -1), reason: /bcrypt hash is truncated or damaged/ },
  { name: 'an empty hash', line: async () => 'bad:', reason: /no password hash after ":"/ },
  { name: 'SHA-256 crypt with too many rounds', line: async () => (await htpasswdLine('bad', 'pw', ['-2', '-r', '1000'])).replace('rounds=1000$', 'rounds=5000000$'), reason: /rounds=5000000, more than the 1000000 the gateway accepts/ },
  { name: 'what htpasswd -2 -r 999 writes when crypt(3) fails', line: () => htpasswdLine('bad', 'pw', ['-2', '-r', '999']), reason: /locked or its hash was never made/ },
];

describe('a line the gateway cannot verify stops serve before it listens', () => {
  for (const bad of BAD_LINES) {
    it(`names line 3 and the format for ${bad.name}, without the hash`, async () => {
      const good = await htpasswdLine('good', 'good-pass', ['-B', '-C', '4']);
      const badLine = await bad.line();
      const file = join(dir, `bad-${BAD_LINES.indexOf(bad)}`);
      await writeFile(file, lf(['# one bad line', good, badLine]));
      const result = await serveWith(file);
      expectRefusedCleanly(result);
      expect(result.stderr).toContain(`--htpasswd: ${file}:3: user "bad": `);
      expect(result.stderr).toMatch(bad.reason);
      expect(result.stderr).toMatch(/registry-gateway htpasswd add <user>|htpasswd -B|no password hash/);
      const hash = hashOf(badLine);
      if (hash.length > 2) expect(result.stderr).not.toContain(hash);
      expect(result.stderr).not.toContain(hashOf(good));
    });
  }

  it('lists every problem of a file full of bad lines in one error, each with its line number', async () => {
    const text = await readFile(REFUSED_FIXTURE, 'utf8');
    const result = await serveWith(REFUSED_FIXTURE);
    expectRefusedCleanly(result);
    expect(result.stderr).toMatch(/^registry-gateway: invalid configuration \(15 problems\)\n/);
    const listed = [...result.stderr.matchAll(/^ {2}- --htpasswd: .*?refused\.htpasswd:(\d+): user "([^"]+)":/gm)].map((m) => [Number(m[1]), m[2]]);
    expect(listed).toEqual([
      [2, 'des'], [3, 'plain'], [4, 'bcrypt2x'], [5, 'cost99'], [6, 'cost03'], [7, 'short-sha256'], [8, 'short-sha512'],
      [9, 'empty'], [10, 'rounds999'], [11, 'rounds2m'], [12, 'failed'], [13, 'locked'], [14, 'rounds-zero'], [16, 'ok'], [17, 'long-salt'],
    ]);
    for (const line of text.split('\n').slice(1)) {
      const secret = hashOf(line);
      if (secret.length > 2) expect(result.stderr).not.toContain(secret);
    }
  });

  it('names both lines of a user defined twice', async () => {
    const file = join(dir, 'duplicate');
    const [first, second] = await Promise.all([htpasswdLine('twice', 'one', ['-2']), htpasswdLine('twice', 'two', ['-B', '-C', '4'])]);
    await writeFile(file, crlfWithBom([first, '# and again', second]));
    const result = await serveWith(file);
    expectRefusedCleanly(result);
    expect(result.stderr).toContain(`${file}:3: user "twice": the user is defined twice, on lines 1 and 3`);
  });
});

/** Polls the stack's log for the first line with this message logged after `since` lines. */
async function logged(stack: TestStack, msg: string, since: number): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 60; i++) {
    const found = stack.logLines().slice(since).find((l) => l.msg === msg);
    if (found !== undefined) return found;
    await sleep(100);
  }
  return undefined;
}

describe('a bad file on reload keeps the last good users', () => {
  const REFUSED = 'htpasswd file not reloaded: keeping the previous users';

  for (const bad of [BAD_LINES[0]!, BAD_LINES[2]!, BAD_LINES[7]!]) {
    it(`keeps every user in when the file is replaced by one with ${bad.name} on line 2, and logs that line`, forLogins(FORMATS.length + 1), async () => {
      const file = join(dir, 'lf');
      const since = lfStack.logLines().length;
      const newcomer = await htpasswdLine('newcomer', 'new-pass', ['-5']);
      await writeFile(file, lf([newcomer, await bad.line()]));
      const entry = await logged(lfStack, REFUSED, since);
      expect(JSON.stringify(entry?.problems)).toMatch(new RegExp(`${file}:2: user \\\\"bad\\\\": `));
      expect(JSON.stringify(entry?.problems)).toMatch(bad.reason);
      for (const format of FORMATS) {
        expect(await status(lfStack, format.user, format.password), format.user).toBe(200);
      }
      expect(await status(lfStack, 'newcomer', 'new-pass')).toBe(401);
    });
  }

  it('takes the next good file, SHA-crypt users and all', forLogins(3), async () => {
    const file = join(dir, 'lf');
    const since = lfStack.logLines().length;
    await writeFile(file, lf([await htpasswdLine('newcomer', 'new-pass', ['-5', '-r', '2000']), formatLines[5]!]));
    expect(await logged(lfStack, 'htpasswd file reloaded', since)).toBeDefined();
    expect(await status(lfStack, 'newcomer', 'new-pass')).toBe(200);
    expect(await status(lfStack, 'sha256', 'sha-256 crypt')).toBe(200);
    expect(await status(lfStack, 'sha512', 'sha-512 crypt')).toBe(401);
  });
});
