// `registry-gateway access check USER ACTION REPOSITORY`: what the access file decides for one
// request and which rule decides it, for debugging a policy before (or while) the gateway uses it.
// The file is validated as `serve` would: a broken one is reported line by line.

import { parseArgs } from 'node:util';
import { ACTIONS, isRepositoryName, type Action } from '../registry/routes.js';
import { explainDecision } from '../access/decide.js';
import { formatAccessProblem, readAccessFile } from '../access/policy.js';

export const ACCESS_USAGE = `Usage: registry-gateway access check USER ACTION REPOSITORY [--access FILE]

Says whether USER may ACTION (pull, push or delete) the repository REPOSITORY under the access
file, and which rule decides. USER @anonymous is a request without credentials (--auth token). Exit status: 0 allowed, 1 denied, 2 when the file or the arguments
are wrong (every problem of the file is listed with its line).

Options:
  --access FILE  the access file (default: GATEWAY_ACCESS)
  -h, --help     show this help

Example:
  registry-gateway access check robot-ci push team-a/app --access access.yml
`;

export interface AccessIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const PROCESS_IO: AccessIo = { stdout: process.stdout, stderr: process.stderr };

export async function access(argv: string[], env: NodeJS.ProcessEnv = process.env, io: AccessIo = PROCESS_IO): Promise<number> {
  const usageError = (message: string) => {
    io.stderr.write(`registry-gateway access: ${message}\n\n${ACCESS_USAGE}`);
    return 2;
  };
  let parsed: { values: { access?: string; help?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: { access: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (parsed.values.help) {
    io.stdout.write(ACCESS_USAGE);
    return 0;
  }
  const [command, user, action, repository, ...extra] = parsed.positionals;
  if (command !== 'check') return usageError(command === undefined ? 'which command? (check)' : `unknown command "${command}"; the command is check`);
  if (user === undefined || action === undefined || repository === undefined || extra.length > 0) return usageError('check takes USER ACTION REPOSITORY');
  if (!(ACTIONS as readonly string[]).includes(action)) return usageError(`unknown action "${action}"; the actions are ${ACTIONS.join(', ')}`);
  if (!isRepositoryName(repository)) {
    return usageError(`"${repository}" is not a repository name (lower-case letters, digits and . _ - separators, components joined by /)`);
  }
  const file = parsed.values.access ?? (env.GATEWAY_ACCESS || undefined);
  if (file === undefined) return usageError('no access file: give --access FILE or set GATEWAY_ACCESS');

  const policy = await readAccessFile(file);
  if (policy.policy === null) {
    io.stderr.write(`registry-gateway access: ${file} cannot be used (${policy.problems.length} problem${policy.problems.length === 1 ? '' : 's'}):\n`);
    for (const problem of policy.problems) io.stderr.write(`  - ${formatAccessProblem(problem)}\n`);
    return 2;
  }
  const decision = explainDecision(policy.policy, user, action as Action, repository);
  io.stdout.write(`${decision.lines.join('\n')}\n`);
  return decision.allowed ? 0 : 1;
}
