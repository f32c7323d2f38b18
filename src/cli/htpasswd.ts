// `registry-gateway htpasswd`: add, remove, list and verify the users of the htpasswd file, with
// hashes Apache's htpasswd, the registry and the gateway all accept.

import { parseArgs } from 'node:util';
import { BCRYPT_DEFAULT_COST, BCRYPT_MAX_COST, BCRYPT_MIN_COST, hashPassword, verifyPassword, type HashAlgorithm } from '../auth/hash-password.js';
import { listUsers, removeUser, upsertUser, validateUserName } from '../auth/htpasswd-edit.js';
import { formatHtpasswdProblem, readHtpasswdFile } from '../auth/htpasswd.js';
import { SERVE_OPTIONS } from '../config/options.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { checkWritable, openForEdit, type EditableFile } from './htpasswd-file.js';
import { promptHidden, readFirstLine, type TtyInput } from './htpasswd-prompt.js';

const HTPASSWD_OPTION = SERVE_OPTIONS.find((o) => o.flag === 'htpasswd')!;

export const HTPASSWD_USAGE = `Usage: registry-gateway htpasswd [--file FILE] <command>

Manages the users of the gateway's htpasswd file. Each change replaces the file atomically (a
running gateway picks it up within about a second) and keeps every other line as it is.

Commands:
  add USER [--algorithm bcrypt|apr1] [--cost N] [--password-stdin]
                      add USER, or give an existing USER a new password
  remove USER         remove USER
  list                print the user names, one a line
  verify USER [--password-stdin]
                      check USER's password: exit 0 when it matches, 1 when not

The password is typed at a prompt without echo (twice for add), or read from the first line of
standard input with --password-stdin. It is never taken from the command line, where ps and
shell history would show it.

Options:
  --file FILE       the htpasswd file (default: ${HTPASSWD_OPTION.env}, else ${HTPASSWD_OPTION.default})
  --algorithm ALG   bcrypt (default) or apr1 (MD5, as htpasswd -m writes)
  --cost N          bcrypt cost, ${BCRYPT_MIN_COST} to ${BCRYPT_MAX_COST} (default ${BCRYPT_DEFAULT_COST})
  --password-stdin  read the password from standard input
  -h, --help        show this help
`;

export interface HtpasswdIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Whether stdin is a terminal to prompt on (it must then offer setRawMode). */
  isTTY: boolean;
}

type Command =
  | { name: 'help' }
  | { name: 'list'; file: string }
  | { name: 'remove'; file: string; user: string }
  | { name: 'verify'; file: string; user: string; passwordStdin: boolean }
  | { name: 'add'; file: string; user: string; passwordStdin: boolean; algorithm: HashAlgorithm; cost: number | undefined };

export async function htpasswd(argv: string[], env: NodeJS.ProcessEnv = process.env, io: HtpasswdIo = processIo()): Promise<number> {
  try {
    const command = parseCommand(argv, env);
    switch (command.name) {
      case 'help':
        io.stdout.write(HTPASSWD_USAGE);
        return 0;
      case 'add':
        return await add(command, io);
      case 'remove':
        return await remove(command, io);
      case 'list':
        return await list(command, io);
      case 'verify':
        return await verify(command, io);
    }
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    io.stderr.write(`registry-gateway htpasswd: ${err.message}\n`);
    if (err.code === 'USAGE') io.stderr.write('Run "registry-gateway htpasswd --help" for the commands and options.\n');
    return err.exitCode;
  }
}

function processIo(): HtpasswdIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, isTTY: process.stdin.isTTY === true };
}

// --- command line -------------------------------------------------------------------------

const FLAGS = {
  file: { type: 'string' },
  algorithm: { type: 'string' },
  cost: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMAND_FLAGS: Readonly<Record<string, readonly string[]>> = {
  add: ['algorithm', 'cost', 'password-stdin'],
  remove: [],
  list: [],
  verify: ['password-stdin'],
};

function parseCommand(argv: string[], env: NodeJS.ProcessEnv): Command {
  const { values, positionals } = parseFlags(argv);
  if (values.help === true) return { name: 'help' };
  const [name, user, ...extra] = positionals;
  if (name === undefined) throw usage('give a command: add, remove, list or verify');
  const allowed = COMMAND_FLAGS[name];
  if (allowed === undefined) throw usage(`unknown command "${name}"`);
  for (const flag of ['algorithm', 'cost', 'password-stdin'] as const) {
    if (values[flag] !== undefined && !allowed.includes(flag)) throw usage(`--${flag} does not apply to ${name}`);
  }
  const file = values.file ?? (env[HTPASSWD_OPTION.env] || HTPASSWD_OPTION.default);
  if (file === '') throw usage('--file needs a path');
  if (name === 'list') {
    if (user !== undefined) throw usage('list takes no arguments');
    return { name, file };
  }
  if (user === undefined) throw usage(`${name} needs a user name`);
  // Never quote the extra argument: it is most likely a password.
  if (extra.length > 0) throw usage(`${name} takes one user name; passwords are never taken from the command line (use the prompt or --password-stdin)`);
  const passwordStdin = values['password-stdin'] === true;
  if (name === 'remove') return { name, file, user };
  if (name === 'verify') return { name, file, user, passwordStdin };
  const algorithm = parseAlgorithm(values.algorithm);
  return { name: 'add', file, user, passwordStdin, algorithm, cost: parseCost(values.cost, algorithm) };
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs' own message goes on about positionals; the option's name is what matters.
    const unknown = /^Unknown option '([^']*)'/.exec((err as Error).message);
    throw usage(unknown === null ? (err as Error).message : `unknown option ${unknown[1]}`);
  }
}

function parseAlgorithm(value: string | undefined): HashAlgorithm {
  if (value === undefined) return 'bcrypt';
  if (value === 'bcrypt' || value === 'apr1') return value;
  throw usage(`--algorithm must be bcrypt or apr1, not "${value}"`);
}

function parseCost(value: string | undefined, algorithm: HashAlgorithm): number | undefined {
  if (value === undefined) return undefined;
  if (algorithm !== 'bcrypt') throw usage('--cost applies to bcrypt only');
  const cost = /^\d{1,2}$/.test(value) ? Number(value) : NaN;
  if (!(cost >= BCRYPT_MIN_COST && cost <= BCRYPT_MAX_COST)) {
    throw usage(`--cost must be a whole number from ${BCRYPT_MIN_COST} to ${BCRYPT_MAX_COST}, not "${value}"`);
  }
  return cost;
}

function usage(message: string): GatewayError {
  return new GatewayError('USAGE', message);
}

// --- commands ------------------------------------------------------------------------------

async function add(c: Extract<Command, { name: 'add' }>, io: HtpasswdIo): Promise<number> {
  checkUserName(c.user);
  // Find an unreadable file or a read-only folder before anyone types a password.
  await checkWritable(await openForEdit(c.file));
  const password = await readPassword(io, c.passwordStdin, true);
  const hash = await hashPassword(password, { algorithm: c.algorithm, cost: c.cost });
  // Read again now: hashing (and typing) takes a while, and the file may have changed since.
  const file = await openForEdit(c.file);
  const name = file.toText(c.user);
  const existed = listUsers(file.text).includes(name);
  await file.replace(upsertUser(file.text, name, hash));
  const kind = c.algorithm === 'bcrypt' ? `bcrypt, cost ${c.cost ?? BCRYPT_DEFAULT_COST}` : 'apr1';
  io.stdout.write(`${existed ? 'updated' : 'added'} user ${JSON.stringify(c.user)} in ${c.file} (${kind})\n`);
  await warnAboutProblems(c.file, io);
  return 0;
}

async function remove(c: Extract<Command, { name: 'remove' }>, io: HtpasswdIo): Promise<number> {
  checkUserName(c.user);
  const file = await existingFile(c.file);
  const { text, removed } = removeUser(file.text, file.toText(c.user));
  if (!removed) throw unknownUser(c.user, c.file);
  await file.replace(text);
  io.stdout.write(`removed user ${JSON.stringify(c.user)} from ${c.file}\n`);
  await warnAboutProblems(c.file, io);
  return 0;
}

async function list(c: Extract<Command, { name: 'list' }>, io: HtpasswdIo): Promise<number> {
  const file = await existingFile(c.file);
  for (const name of listUsers(file.text)) io.stdout.write(`${file.fromText(name)}\n`);
  await warnAboutProblems(c.file, io);
  return 0;
}

async function verify(c: Extract<Command, { name: 'verify' }>, io: HtpasswdIo): Promise<number> {
  checkUserName(c.user);
  await existingFile(c.file);
  // The gateway's own reading of the file: verify answers "would the gateway let this user in".
  const { users, problems } = await readHtpasswdFile(c.file);
  const hash = users.get(c.user);
  if (hash === undefined) {
    const problem = problems.find((p) => p.user === c.user);
    if (problem === undefined) throw unknownUser(c.user, c.file);
    io.stderr.write(`registry-gateway htpasswd: cannot verify: ${formatHtpasswdProblem(problem)}\n`);
    return 1;
  }
  const password = await readPassword(io, c.passwordStdin, false);
  const match = await verifyPassword(password, hash);
  io.stderr.write(`password for user ${JSON.stringify(c.user)} ${match ? 'is correct' : 'does not match'}\n`);
  await warnAboutProblems(c.file, io);
  return match ? 0 : 1;
}

// --- shared steps --------------------------------------------------------------------------

function checkUserName(user: string): void {
  const reason = validateUserName(user);
  if (reason !== null) throw new GatewayError('HTPASSWD_USER_INVALID', `cannot use the user name ${JSON.stringify(user)}: ${reason}`);
}

async function existingFile(path: string): Promise<EditableFile> {
  const file = await openForEdit(path);
  if (!file.exists) throw new GatewayError('HTPASSWD_UNREADABLE', `${path} does not exist; add a user to create it, or fix --file`);
  return file;
}

function unknownUser(user: string, path: string): GatewayError {
  return new GatewayError('HTPASSWD_USER_UNKNOWN', `there is no user ${JSON.stringify(user)} in ${path}`);
}

async function readPassword(io: HtpasswdIo, fromStdin: boolean, confirm: boolean): Promise<string> {
  const password = fromStdin ? await readFirstLine(io.stdin) : await promptPassword(io, confirm);
  if (password === '') throw new GatewayError('PASSWORD_REFUSED', 'the password is empty; nothing was changed');
  return password;
}

async function promptPassword(io: HtpasswdIo, confirm: boolean): Promise<string> {
  const tty = io.stdin as Partial<TtyInput>;
  if (!io.isTTY || typeof tty.setRawMode !== 'function') {
    throw usage('standard input is not a terminal to ask for the password on; pass it on standard input with --password-stdin');
  }
  const prompts = confirm ? ['New password: ', 'Re-type new password: '] : ['Password: '];
  const [first, second] = await promptHidden(tty as TtyInput, io.stderr, prompts);
  if (confirm && first !== second) throw new GatewayError('PASSWORD_REFUSED', 'the two passwords differ; nothing was changed');
  return first!;
}

/** Lines the gateway cannot use block every reload of the file: say so, without any hash. */
async function warnAboutProblems(path: string, io: HtpasswdIo): Promise<void> {
  const problems = (await readHtpasswdFile(path)).problems.filter((p) => p.line > 0);
  if (problems.length === 0) return;
  const count = problems.length === 1 ? '1 line' : `${problems.length} lines`;
  io.stderr.write(
    `warning: the gateway cannot use ${count} of ${path}; until fixed, it will not start with this file ` +
      `and a running gateway keeps its previous users:\n`,
  );
  for (const p of problems) io.stderr.write(`  ${formatHtpasswdProblem(p)}\n`);
}
