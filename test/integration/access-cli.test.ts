// `registry-gateway access check`, run as a user would: the built CLI, a real file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_BIN as CLI } from '../helpers/gateway-process.js';
import { run } from '../helpers/tools.js';

const POLICY = `groups:
  ci: [robot-ci]
rules:
  - users: ["@ci"]
    repositories: ["team-a/*"]
    actions: [pull, push]
  - users: ["*"]
    repositories: ["library/*", "\${user}/*"]
    actions: [pull]
`;

let dir: string;
let file: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-access-cli-'));
  file = join(dir, 'access.yml');
  await writeFile(file, POLICY);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const check = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [CLI, 'access', 'check', ...args], { env: { PATH: process.env.PATH, ...env }, timeoutMs: 20_000 });

describe('registry-gateway access check', () => {
  it('says allowed, and which rule on which line grants it (exit 0)', async () => {
    const r = await check(['robot-ci', 'push', 'team-a/app', '--access', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('allowed: robot-ci may push team-a/app\ngranted by rule 1 (line 4): users [@ci], repositories [team-a/*], actions [pull, push]\n');
  });

  it('answers for @anonymous, the requests without credentials of token mode, which "*" leaves out', async () => {
    const open = join(dir, 'public.yml');
    await writeFile(open, `${POLICY}  - users: ["@anonymous"]\n    repositories: ["public/*"]\n    actions: [pull]\n`);
    const allowed = await check(['@anonymous', 'pull', 'public/x', '--access', open]);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toBe('allowed: @anonymous may pull public/x\ngranted by rule 3 (line 10): users [@anonymous], repositories [public/*], actions [pull]\n');
    const library = await check(['@anonymous', 'pull', 'library/base', '--access', open]);
    expect(library.code).toBe(1);
    expect(library.stdout).toContain('rule 2 (line 7): users [*], repositories [library/*, ${user}/*], actions [pull] grants it to "*", every signed-in user, which leaves out @anonymous');
  });

  it('says denied, and what each rule of that user lacks (exit 1)', async () => {
    const r = await check(['robot-ci', 'delete', 'team-a/app', '--access', file]);
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n')).toEqual([
      'denied: no rule grants delete on team-a/app to robot-ci',
      'rules that apply to robot-ci:',
      '  rule 1 (line 4): users [@ci], repositories [team-a/*], actions [pull, push]: matches team-a/app, but grants no delete',
      '  rule 2 (line 7): users [*], repositories [library/*, ${user}/*], actions [pull]: no pattern matches team-a/app',
      '',
    ]);
  });

  it('reads the file from GATEWAY_ACCESS, and resolves ${user}', async () => {
    const own = await check(['carol', 'pull', 'carol/tool'], { GATEWAY_ACCESS: file });
    expect(own.code).toBe(0);
    expect(own.stdout).toContain('granted by rule 2 (line 7)');
    expect((await check(['carol', 'pull', 'dave/tool'], { GATEWAY_ACCESS: file })).code).toBe(1);
  });

  it('validates the file, listing every problem with its line (exit 2)', async () => {
    const bad = join(dir, 'bad.yml');
    await writeFile(bad, 'rules:\n  - users: ["@ops"]\n    repositories: ["*"]\n    actions: [pull, pushh]\n');
    const r = await check(['alice', 'pull', 'x', '--access', bad]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `registry-gateway access: ${bad} cannot be used (2 problems):\n` +
        `  - ${bad}:2: rule 1: unknown group "@ops"; define it under groups:\n` +
        `  - ${bad}:4: rule 1: unknown action "pushh"; the actions are pull, push, delete\n`,
    );
  });

  it.each([
    [['alice', 'write', 'x'], 'unknown action "write"; the actions are pull, push, delete'],
    [['alice', 'pull', 'Team/App'], '"Team/App" is not a repository name'],
    [['alice', 'pull'], 'check takes USER ACTION REPOSITORY'],
    [['alice', 'pull', 'x'], 'no access file: give --access FILE or set GATEWAY_ACCESS'],
  ])('refuses %j with a usage error (exit 2)', async (args, message) => {
    const r = await check(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('is listed in the top-level help', async () => {
    const r = await run(process.execPath, [CLI, '--help'], { timeoutMs: 20_000 });
    expect(r.stdout).toMatch(/^  access +check USER ACTION REPOSITORY/m);
  });
});
