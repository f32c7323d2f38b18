// `registry-gateway htpasswd`: the files it writes are read by Apache's htpasswd and by the
// registry's own htpasswd auth; the files Apache writes are edited without damage.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { htpasswd, type HtpasswdIo } from '../../src/cli/htpasswd.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { startRegistry } from '../helpers/registry.js';
import { requireTool, run, runOk } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';
import { fixturePath } from '../helpers/htpasswd-fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-htpasswd-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let files = 0;
const newPath = () => join(dir, `htpasswd-${++files}`);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command in-process with in-memory streams; stdin is `input`, not a terminal. */
async function cli(args: string[], options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const stdin = Readable.from(options.input === undefined ? [] : [Buffer.from(options.input)]);
  const io: HtpasswdIo = { stdin, stdout, stderr, isTTY: false };
  const code = await htpasswd(args, options.env ?? {}, io);
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** `add` with the password on stdin. */
const add = (file: string, user: string, password: string, ...flags: string[]) =>
  cli(['add', user, '--file', file, '--password-stdin', ...flags], { input: `${password}\n` });

/** Exit code of Apache's `htpasswd -vb`: 0 when the password matches. */
async function apacheVerify(file: string, user: string, password: string): Promise<number | null> {
  return (await run(requireTool('htpasswd'), ['-vb', file, user, password])).code;
}

const mode = async (file: string) => (await stat(file)).mode & 0o777;

describe('files it writes, checked by Apache htpasswd -v', () => {
  it('adds a bcrypt user ($2y$, cost 10 by default) that Apache verifies, in a new 0600 file', async () => {
    const file = newPath();
    const result = await add(file, 'alice', 'alice-secret');
    expect(result).toMatchObject({ code: 0, stdout: `added user "alice" in ${file} (bcrypt, cost 10)\n` });
    expect(await readFile(file, 'utf8')).toMatch(/^alice:\$2y\$10\$[./A-Za-z0-9]{53}\n$/);
    expect(await mode(file)).toBe(0o600);
    expect(await apacheVerify(file, 'alice', 'alice-secret')).toBe(0);
    expect(await apacheVerify(file, 'alice', 'alice-secreT')).not.toBe(0);
  });

  it('writes apr1 with --algorithm apr1 and the cost asked for with --cost', async () => {
    const file = newPath();
    expect((await add(file, 'carol', 'carol-pw', '--algorithm', 'apr1')).code).toBe(0);
    expect((await add(file, 'bob', 'bob-pw', '--cost', '5')).code).toBe(0);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^carol:\$apr1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}\nbob:\$2y\$05\$/);
    expect(await apacheVerify(file, 'carol', 'carol-pw')).toBe(0);
    expect(await apacheVerify(file, 'bob', 'bob-pw')).toBe(0);
  });

  it('keeps spaces, colons and UTF-8 in passwords, for bcrypt and apr1', async () => {
    const file = newPath();
    const passwords = { spaced: ' a: b :c: ', unicode: 'pässwörd 日本語 🔑' };
    for (const algorithm of ['bcrypt', 'apr1']) {
      for (const [name, password] of Object.entries(passwords)) {
        expect((await add(file, `${name}-${algorithm}`, password, '--algorithm', algorithm)).code).toBe(0);
        expect(await apacheVerify(file, `${name}-${algorithm}`, password)).toBe(0);
        expect((await cli(['verify', `${name}-${algorithm}`, '--file', file, '--password-stdin'], { input: password })).code).toBe(0);
      }
    }
  });

  it('reads only the first line of stdin and strips its CRLF', async () => {
    const file = newPath();
    expect((await cli(['add', 'dos', '--file', file, '--password-stdin', '--cost', '4'], { input: 'from windows\r\nsecond line\n' })).code).toBe(0);
    expect(await apacheVerify(file, 'dos', 'from windows')).toBe(0);
  });

  it('takes the file from GATEWAY_HTPASSWD when --file is not given', async () => {
    const file = newPath();
    const result = await cli(['add', 'envuser', '--password-stdin', '--cost', '4'], { input: 'pw\n', env: { GATEWAY_HTPASSWD: file } });
    expect(result.code).toBe(0);
    expect(await apacheVerify(file, 'envuser', 'pw')).toBe(0);
  });
});

describe('where it writes', () => {
  it('writes through a symbolic link (as config managers and secret mounts use), keeping the link', async () => {
    const real = newPath();
    const link = `${real}-link`;
    await add(real, 'alice', 'alice-pw', '--cost', '4');
    await symlink(real, link);
    expect((await add(link, 'bob', 'bob-pw', '--cost', '4')).code).toBe(0);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await apacheVerify(real, 'bob', 'bob-pw')).toBe(0);
    expect(await apacheVerify(real, 'alice', 'alice-pw')).toBe(0);
  });
});

describe('files Apache htpasswd wrote', () => {
  async function apacheFile(): Promise<{ file: string; before: string }> {
    const file = newPath();
    await writeHtpasswd(file, [
      { user: 'alice', password: 'alice-pw', algorithm: 'bcrypt', cost: 5 },
      { user: 'carol', password: 'carol-pw', algorithm: 'apr1' },
      { user: 'dave', password: 'dave-pw', algorithm: 'sha' },
    ]);
    const before = `# managed by hand, keep this comment\n\n${await readFile(file, 'utf8')}# trailing note\n`;
    await writeFile(file, before);
    return { file, before };
  }

  it('lists the users in file order', async () => {
    const { file } = await apacheFile();
    expect(await cli(['list', '--file', file])).toEqual({ code: 0, stdout: 'alice\ncarol\ndave\n', stderr: '' });
  });

  it('verifies bcrypt -C 5, apr1 (-m) and {SHA} (-s) passwords: 0 on a match, 1 otherwise', async () => {
    const { file } = await apacheFile();
    for (const user of ['alice', 'carol', 'dave']) {
      const ok = await cli(['verify', user, '--file', file, '--password-stdin'], { input: `${user}-pw\n` });
      expect(ok).toMatchObject({ code: 0, stderr: `password for user "${user}" is correct\n` });
      const wrong = await cli(['verify', user, '--file', file, '--password-stdin'], { input: `${user}-PW\n` });
      expect(wrong).toMatchObject({ code: 1, stderr: `password for user "${user}" does not match\n` });
    }
  });

  it('updates one user in place and leaves every other line, comments included, as it was', async () => {
    const { file, before } = await apacheFile();
    const result = await add(file, 'carol', 'carol-new', '--cost', '5');
    expect(result).toMatchObject({ code: 0, stdout: `updated user "carol" in ${file} (bcrypt, cost 5)\n` });
    const after = await readFile(file, 'utf8');
    const [was, is] = [before.split('\n'), after.split('\n')];
    expect(is).toHaveLength(was.length);
    is.forEach((line, i) => (line.startsWith('carol:') ? expect(line).not.toBe(was[i]) : expect(line).toBe(was[i])));
    expect(await apacheVerify(file, 'carol', 'carol-new')).toBe(0);
    expect(await apacheVerify(file, 'alice', 'alice-pw')).toBe(0);
    expect(await apacheVerify(file, 'dave', 'dave-pw')).toBe(0);
  });

  it('keeps the mode of an existing file', async () => {
    const { file } = await apacheFile();
    await chmod(file, 0o640);
    expect((await add(file, 'erin', 'erin-pw', '--cost', '4')).code).toBe(0);
    expect(await mode(file)).toBe(0o640);
    expect((await cli(['remove', 'erin', '--file', file])).code).toBe(0);
    expect(await mode(file)).toBe(0o640);
  });

  it('takes away access for others from a world-readable file it rewrites', async () => {
    const { file } = await apacheFile();
    await chmod(file, 0o644);
    expect((await add(file, 'erin', 'erin-pw', '--cost', '4')).code).toBe(0);
    expect(await mode(file)).toBe(0o640);
  });

  it('removes a user, which Apache then no longer finds', async () => {
    const { file, before } = await apacheFile();
    expect(await cli(['remove', 'carol', '--file', file])).toEqual({ code: 0, stdout: `removed user "carol" from ${file}\n`, stderr: '' });
    expect(await readFile(file, 'utf8')).toBe(before.replace(/^carol:.*\n/m, ''));
    expect(await apacheVerify(file, 'carol', 'carol-pw')).not.toBe(0);
    expect(await apacheVerify(file, 'alice', 'alice-pw')).toBe(0);
  });

  it('keeps Apache CRLF files CRLF', async () => {
    const file = newPath();
    await copyFile(fixturePath('crlf.htpasswd'), file);
    expect((await add(file, 'newbie', 'newbie-pw', '--cost', '4')).code).toBe(0);
    const text = await readFile(file, 'utf8');
    const original = await readFile(fixturePath('crlf.htpasswd'), 'utf8');
    expect(text.startsWith(original)).toBe(true);
    expect(text.slice(original.length)).toMatch(/^newbie:\$2y\$04\$[./A-Za-z0-9]{53}\r\n$/);
    expect(await apacheVerify(file, 'newbie', 'newbie-pw')).toBe(0);
    expect(await apacheVerify(file, 'carol', 'crlf-carol')).toBe(0);
  });
});

describe('lines the gateway cannot use', () => {
  it('adds a user anyway and warns with line numbers and users, never the hashes', async () => {
    const file = newPath();
    await copyFile(fixturePath('unsupported.htpasswd'), file);
    const before = await readFile(file, 'utf8');
    const result = await add(file, 'newbie', 'newbie-pw', '--cost', '4');
    expect(result.code).toBe(0);
    const after = await readFile(file, 'utf8');
    expect(after.startsWith(before)).toBe(true);
    expect(after.slice(before.length)).toMatch(/^newbie:[^\n]+\n$/);
    expect(result.stderr).toContain(`warning: the gateway cannot use 10 lines of ${file}`);
    expect(result.stderr).toContain(`${file}:2: user "des": this looks like a DES crypt hash`);
    expect(result.stderr).toContain(`${file}:11: user "ldapmd5": the {MD5} hash format is not supported`);
    for (const line of before.split('\n').filter((l) => l.includes(':') && !l.startsWith('#'))) {
      expect(result.stderr).not.toContain(line.slice(line.indexOf(':') + 1));
    }
    expect(await apacheVerify(file, 'newbie', 'newbie-pw')).toBe(0);
  });

  it('removes a user from a file with such lines, keeping them', async () => {
    const file = newPath();
    await copyFile(fixturePath('malformed.htpasswd'), file);
    const before = await readFile(file, 'utf8');
    const result = await cli(['remove', 'padded', '--file', file]);
    expect(result.code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(before.replace(/^ {2}padded:.*\n/m, ''));
    expect(result.stderr).toMatch(/:2: the line has no ":"/);
  });

  it('keeps a Latin-1 line byte for byte while changing another', async () => {
    const file = newPath();
    await copyFile(fixturePath('latin1.htpasswd'), file);
    const before = await readFile(file);
    const result = await add(file, 'ok2', 'ok2-new', '--algorithm', 'apr1');
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`${file}:2: the line is not valid UTF-8`);
    const after = await readFile(file);
    const lines = (b: Buffer) => b.toString('latin1').split('\n');
    expect(lines(after).slice(0, 2)).toEqual(lines(before).slice(0, 2));
    expect(lines(after)[1]).toMatch(/^jos\u00e9:/);
    expect(await apacheVerify(file, 'ok2', 'ok2-new')).toBe(0);
    expect(await apacheVerify(file, 'ok1', 'ok1')).toBe(0);
  });

  it('names the reason when verify meets a user whose hash cannot be checked', async () => {
    const file = fixturePath('unsupported.htpasswd');
    const result = await cli(['verify', 'bcrypt2x', '--file', file, '--password-stdin'], { input: 'x-pass\n' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot verify: ${file}:8: user "bcrypt2x": bcrypt with the $2x$ prefix`);
  });
});

describe('mistakes', () => {
  it('exits 1 when removing or verifying a user who is not there, and changes nothing', async () => {
    const file = newPath();
    await add(file, 'alice', 'pw', '--cost', '4');
    const before = await readFile(file, 'utf8');
    const removed = await cli(['remove', 'nobody', '--file', file]);
    expect(removed).toEqual({ code: 1, stdout: '', stderr: `registry-gateway htpasswd: there is no user "nobody" in ${file}\n` });
    expect(await readFile(file, 'utf8')).toBe(before);
    const verified = await cli(['verify', 'nobody', '--file', file, '--password-stdin'], { input: 'pw\n' });
    expect(verified.code).toBe(1);
    expect(verified.stderr).toContain('there is no user "nobody"');
  });

  it('refuses bad user names with the reason and exit 2', async () => {
    const file = newPath();
    const colon = await add(file, 'a:b', 'pw');
    expect(colon.code).toBe(2);
    expect(colon.stderr).toContain('cannot use the user name "a:b": the user name contains ":"');
    const empty = await add(file, '', 'pw');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the user name is empty');
    expect((await cli(['remove', 'a:b', '--file', file])).code).toBe(2);
    await expect(stat(file)).rejects.toThrow();
  });

  it('refuses an empty password on stdin and writes nothing', async () => {
    const file = newPath();
    for (const input of ['', '\n', '\r\n']) {
      const result = await cli(['add', 'alice', '--file', file, '--password-stdin'], { input });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('the password is empty');
    }
    await expect(stat(file)).rejects.toThrow();
  });

  it('refuses a bcrypt password longer than the 72 bytes bcrypt reads, and accepts it for apr1', async () => {
    const file = newPath();
    const long = 'x'.repeat(73);
    const result = await add(file, 'alice', long);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('bcrypt uses only the first 72');
    expect((await add(file, 'alice', long, '--algorithm', 'apr1')).code).toBe(0);
    expect(await apacheVerify(file, 'alice', long)).toBe(0);
  });

  it('never takes a password from the command line, and does not repeat it', async () => {
    const result = await cli(['add', 'alice', 'hunter2', '--file', newPath()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('passwords are never taken from the command line');
    expect(result.stderr).not.toContain('hunter2');
    const flag = await cli(['add', 'alice', '--password=hunter2', '--file', newPath()]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown option --password');
    expect(flag.stderr).not.toContain('hunter2');
  });

  it('asks for --password-stdin when stdin is not a terminal', async () => {
    const result = await cli(['add', 'alice', '--file', newPath()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('standard input is not a terminal');
    expect(result.stderr).toContain('--password-stdin');
  });

  it('exits 2 on usage errors and 0 with --help', async () => {
    for (const args of [[], ['frobnicate'], ['add'], ['list', 'extra'], ['add', 'a', '--cost', '3'], ['add', 'a', '--cost', '18'],
      ['add', 'a', '--algorithm', 'sha'], ['add', 'a', '--algorithm', 'apr1', '--cost', '5'], ['remove', 'a', '--cost', '5'], ['list', '--file']]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toContain('registry-gateway htpasswd --help');
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const text of ['add USER', 'remove USER', 'list', 'verify USER', '--password-stdin', 'GATEWAY_HTPASSWD', './htpasswd', '4 to 17']) {
      expect(help.stdout).toContain(text);
    }
  });

  it('names the file it cannot read and the folder it cannot write', async () => {
    const unreadable = await cli(['list', '--file', dir]);
    expect(unreadable).toMatchObject({ code: 1, stderr: `registry-gateway htpasswd: cannot read ${dir}: it is a directory\n` });
    const missing = await cli(['list', '--file', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`${join(dir, 'nope')} does not exist`);
    const noFolder = join(dir, 'no-such-folder', 'htpasswd');
    const unwritable = await add(noFolder, 'alice', 'pw');
    expect(unwritable).toMatchObject({ code: 1, stderr: `registry-gateway htpasswd: cannot write ${noFolder}: the folder ${join(dir, 'no-such-folder')} does not exist\n` });
  });

  it('leaves no temporary files behind', async () => {
    const folder = join(dir, 'clean');
    await mkdir(folder);
    const file = join(folder, 'htpasswd');
    await add(file, 'alice', 'pw', '--cost', '4');
    await add(file, 'bob', 'pw', '--cost', '4');
    await cli(['remove', 'alice', '--file', file]);
    expect(await readdir(folder)).toEqual(['htpasswd']);
  });
});

describe('the registry’s own htpasswd auth', () => {
  it('lets in a user added by the command, and takes a changed password', async () => {
    const file = newPath();
    expect((await add(file, 'robot', 'robot: pass wörd', '--cost', '5')).code).toBe(0);
    const registry = await startRegistry({ htpasswdFile: file });
    const ping = async (password: string) =>
      (await fetch(`${registry.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from(`robot:${password}`).toString('base64')}` } })).status;
    try {
      expect(await ping('robot: pass wörd')).toBe(200);
      expect(await ping('robot: pass word')).toBe(401);
      expect((await add(file, 'robot', 'second password', '--cost', '5')).code).toBe(0);
      expect(await ping('second password')).toBe(200);
      expect(await ping('robot: pass wörd')).toBe(401);
    } finally {
      await registry.stop();
    }
  });
});

describe('the password prompt on a real terminal', () => {
  const root = resolve(import.meta.dirname, '../..');
  let build: string;
  let runner: string;

  // The prompt needs a terminal, so the command runs in a child under `script`, which gives it a
  // pseudo-terminal. Node 20 cannot load TypeScript, so the command is compiled first.
  beforeAll(async () => {
    build = join(root, '.tmp', `htpasswd-cli-${randomBytes(4).toString('hex')}`);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    await runOk(process.execPath, [tsc, '--outDir', build, '--rootDir', join(root, 'src'), '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--strict', '--skipLibCheck', '--allowJs', '--types', 'node', join(root, 'src', 'cli', 'htpasswd.ts')]);
    runner = join(build, 'run.mjs');
    await writeFile(runner, "import { htpasswd } from './cli/htpasswd.js';\nprocess.exitCode = await htpasswd(process.argv.slice(2));\n");
  });
  afterAll(async () => {
    await rm(build, { recursive: true, force: true });
    await rmdir(join(root, '.tmp')).catch(() => undefined); // made by this build; only when empty (another may be in it)
  });

  /** Runs the command on a pseudo-terminal, typing each input once its prompt shows; then `stty -a`. */
  async function onTerminal(args: string[], steps: Array<[prompt: string, typed: string]>): Promise<string> {
    const quoted = [process.execPath, runner, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // `script` keeps echo on for piped input: anything not hidden would show in the transcript.
    const child = spawn(requireTool('script'), ['-q', '-c', `${quoted}; echo "exit=$?"; stty -a`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let transcript = '';
    child.stdout.on('data', (c: Buffer) => (transcript += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (transcript += c.toString('utf8')));
    const exited = new Promise((r) => child.once('exit', r));
    for (const [i, [prompt, typed]] of steps.entries()) {
      // Type only once the prompt shows: the terminal is in raw mode (no echo) from then on.
      const shown = steps.slice(0, i + 1).filter(([p]) => p === prompt).length;
      if (!(await eventually(() => transcript.split(prompt).length - 1 >= shown, 10_000, 20))) {
        throw new Error(`no prompt ${JSON.stringify(prompt)}; transcript:\n${transcript}`);
      }
      child.stdin.write(typed);
    }
    await exited;
    child.stdin.end();
    return transcript;
  }

  it('reads the password twice without echo, with backspace, and restores the terminal', async () => {
    const file = newPath();
    const transcript = await onTerminal(['add', 'tty-user', '--file', file, '--cost', '4'], [
      ['New password: ', 'tty secretX\x7f\r'],
      ['Re-type new password: ', 'tty secret\r'],
    ]);
    expect(transcript).toContain('exit=0');
    expect(transcript).toContain(`added user "tty-user" in ${file}`);
    expect(transcript).not.toContain('secret');
    expect(transcript).not.toContain('*');
    expect(transcript).toMatch(/\bicanon\b/);
    expect(transcript).toMatch(/(^|\s)echo\s/m);
    expect(await apacheVerify(file, 'tty-user', 'tty secret')).toBe(0);
  });

  it('cancels on Ctrl-C with exit 130, writes nothing and restores the terminal', async () => {
    const file = newPath();
    const transcript = await onTerminal(['add', 'tty-user', '--file', file], [['New password: ', 'half\x03']]);
    expect(transcript).toContain('exit=130');
    expect(transcript).toContain('cancelled; nothing was changed');
    expect(transcript).not.toContain('half');
    expect(transcript).toMatch(/(^|\s)echo\s/m);
    await expect(stat(file)).rejects.toThrow();
  });

  it('refuses two different passwords, and verify asks once', async () => {
    const file = newPath();
    const differ = await onTerminal(['add', 'tty-user', '--file', file, '--cost', '4'], [
      ['New password: ', 'one\r'],
      ['Re-type new password: ', 'two\r'],
    ]);
    expect(differ).toContain('exit=1');
    expect(differ).toContain('the two passwords differ');
    await add(file, 'tty-user', 'right one', '--cost', '4');
    const verified = await onTerminal(['verify', 'tty-user', '--file', file], [['Password: ', 'right one\r']]);
    expect(verified).toContain('exit=0');
    expect(verified).toContain('password for user "tty-user" is correct');
  });
});
