// The access file: what it grants, and every problem named with its line.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explainDecision, firstRefusedNeed, grantFor, isAllowed, namesAnonymous } from '../../../src/access/decide.js';
import { accessClaim, ANONYMOUS, parseScopes, type Grant } from '../../../src/registry/grant.js';
import { formatAccessProblem, parseAccessPolicy, readAccessFile, type AccessPolicy } from '../../../src/access/policy.js';

const EXAMPLE = `groups:
  ci: [robot-ci, robot-deploy]
rules:
  - users: [alice]                  # user names, "@group", or "*"
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: ["@ci"]
    repositories: ["team-a/*"]
    actions: [pull, push]
  - users: ["*"]
    repositories: ["library/*", "\${user}/*"]
    actions: [pull]
`;

function policyOf(text: string): AccessPolicy {
  const parsed = parseAccessPolicy(text, 'access.yml');
  if (parsed.policy === null) throw new Error(parsed.problems.map(formatAccessProblem).join('\n'));
  return parsed.policy;
}

/** The problems of a file, as the user sees them. */
function problemsOf(text: string): string[] {
  const parsed = parseAccessPolicy(text, 'access.yml');
  expect(parsed.policy).toBeNull();
  return parsed.problems.map(formatAccessProblem);
}

describe('the example access file', () => {
  const policy = policyOf(EXAMPLE);

  it('gives alice everything', () => {
    for (const action of ['pull', 'push', 'delete'] as const) expect(isAllowed(policy, 'alice', action, 'any/where')).toBe(true);
  });

  it('lets the ci group push inside team-a only, and delete nothing', () => {
    expect(isAllowed(policy, 'robot-ci', 'push', 'team-a/app')).toBe(true);
    expect(isAllowed(policy, 'robot-deploy', 'pull', 'team-a/tools/x')).toBe(true);
    expect(isAllowed(policy, 'robot-ci', 'push', 'team-b/app')).toBe(false);
    expect(isAllowed(policy, 'robot-ci', 'delete', 'team-a/app')).toBe(false);
  });

  it('lets anyone pull library/* and their own namespace, and push nowhere', () => {
    expect(isAllowed(policy, 'carol', 'pull', 'library/alpine')).toBe(true);
    expect(isAllowed(policy, 'carol', 'pull', 'carol/app')).toBe(true);
    expect(isAllowed(policy, 'carol', 'pull', 'dave/app')).toBe(false);
    expect(isAllowed(policy, 'carol', 'pull', 'team-a/app')).toBe(false);
    expect(isAllowed(policy, 'carol', 'push', 'library/alpine')).toBe(false);
  });

  it('is the union of its rules: order does not matter', () => {
    const reordered = policyOf(`groups:\n  ci: [robot-ci, robot-deploy]\nrules:\n${EXAMPLE.split('rules:\n')[1]!.split(/(?=  - users)/).reverse().join('')}`);
    for (const [user, action, repo] of [
      ['robot-ci', 'push', 'team-a/app'],
      ['robot-ci', 'push', 'team-b/app'],
      ['carol', 'pull', 'carol/x'],
      ['alice', 'delete', 'x'],
    ] as const) {
      expect(isAllowed(reordered, user, action, repo)).toBe(isAllowed(policy, user, action, repo));
    }
  });

  it('checks every need of a request: a mount reads its source', () => {
    expect(firstRefusedNeed(policy, 'robot-ci', [{ action: 'push', repository: 'team-a/app' }, { action: 'pull', repository: 'library/base' }])).toBeNull();
    expect(firstRefusedNeed(policy, 'robot-ci', [{ action: 'push', repository: 'team-a/app' }, { action: 'pull', repository: 'team-b/secret' }])).toEqual({
      action: 'pull',
      repository: 'team-b/secret',
    });
  });

  it('explains which rule decides, with its line', () => {
    expect(explainDecision(policy, 'robot-ci', 'push', 'team-a/app')).toEqual({
      allowed: true,
      lines: ['allowed: robot-ci may push team-a/app', 'granted by rule 2 (line 7): users [@ci], repositories [team-a/*], actions [pull, push]'],
    });
    const denied = explainDecision(policy, 'robot-ci', 'delete', 'team-a/app');
    expect(denied.allowed).toBe(false);
    expect(denied.lines.join('\n')).toMatch(/no rule grants delete on team-a\/app to robot-ci/);
    expect(denied.lines.join('\n')).toMatch(/rule 2 \(line 7\).*matches team-a\/app, but grants no delete/);
    expect(denied.lines.join('\n')).toMatch(/rule 3 \(line 10\).*no pattern matches team-a\/app/);
  });
});

describe('access file problems name their line', () => {
  it.each([
    ['rules:\n  - users: [alice]\n    repositories: ["*"]\n    actions: [pull, pusj]\n', 'access.yml:4: rule 1: unknown action "pusj"; the actions are pull, push, delete'],
    ['rules:\n  - users: ["@admins"]\n    repositories: ["*"]\n    actions: [pull]\n', 'access.yml:2: rule 1: unknown group "@admins"; define it under groups:'],
    ['rules:\n  - users: alice\n    repositories: ["*"]\n    actions: [pull]\n', 'access.yml:2: rule 1: users must be a list, e.g. users: [alice, "@ci"]'],
    ['rules:\n  - users: [alice]\n    repositories: ["Team/*"]\n    actions: [pull]\n', 'access.yml:3: rule 1: "Team/*" has upper-case letters; repository names are lower case, so it would never match'],
    ['rules:\n  - users: [alice]\n    repositories: ["${USER}/*"]\n    actions: [pull]\n', 'access.yml:3: rule 1: unknown placeholder ${USER} in "${USER}/*"; the only one is ${user}'],
    ['groups:\n  ci: [a, "@b"]\nrules:\n  - users: [a]\n    repositories: ["*"]\n    actions: [pull]\n', 'access.yml:2: group "ci" lists "@b": groups hold user names only'],
    ['rules: []\n', 'access.yml:1: no rules: every request would be refused; add rules (to let every user do everything, leave --access out)'],
    ['rules:\n  - users: []\n    repositories: ["*"]\n    actions: [pull]\n', 'access.yml:2: rule 1: users is an empty list, so the rule grants nothing; e.g. users: [alice, "@ci"]'],
  ])('%j', (text, problem) => {
    expect(problemsOf(text)).toEqual([problem]);
  });

  it('names a misspelt key, and what it leaves missing', () => {
    expect(problemsOf('rules:\n  - users: [alice]\n    repositroies: ["*"]\n    actions: [pull]\n')).toEqual([
      'access.yml:3: rule 1: unknown key "repositroies"; a rule has users, repositories and actions',
      'access.yml:2: rule 1 has no "repositories"',
    ]);
    expect(problemsOf('rule:\n  - users: [alice]\n')).toEqual([
      'access.yml:1: unknown key "rule"; an access file has "groups" and "rules"',
      'access.yml:1: no rules: every request would be refused; add rules (to let every user do everything, leave --access out)',
    ]);
  });

  it('names a rule missing a key on the line the rule starts', () => {
    expect(problemsOf('rules:\n  - users: [a]\n    actions: [pull]\n  - users: [b]\n    repositories: ["*"]\n')).toEqual([
      'access.yml:2: rule 1 has no "repositories"',
      'access.yml:4: rule 2 has no "actions"',
    ]);
  });

  it('reports every problem of the file at once', () => {
    const problems = problemsOf('rules:\n  - users: ["@x"]\n    repositories: ["A"]\n    actions: [pul]\n    extra: 1\n');
    expect(problems.map((p) => p.split(':')[1])).toEqual(['5', '2', '3', '4']);
  });

  it('reports YAML syntax errors with their line', () => {
    const [problem, ...rest] = problemsOf('rules:\n  - users: [alice\n    repositories: ["*"]\n');
    expect(rest).toEqual([]);
    expect(problem).toMatch(/^access\.yml:\d+: not valid YAML: /);
  });

  it('refuses a key given twice, naming its line', () => {
    expect(problemsOf('rules:\n  - users: [a]\n    users: [b]\n    repositories: ["*"]\n    actions: [pull]\n')[0]).toMatch(/^access\.yml:3: not valid YAML: Map keys must be unique/);
  });

  it('refuses an empty file and a file that is not a map', () => {
    expect(problemsOf('')[0]).toMatch(/^access\.yml: an access file is a map with "groups" \(optional\) and "rules"/);
    expect(problemsOf('- a\n- b\n')[0]).toMatch(/^access\.yml:1: an access file is a map/);
  });

  it('reads user names as written, even ones YAML would take for numbers or booleans', () => {
    const policy = policyOf('rules:\n  - users: [007, yes, null]\n    repositories: ["*"]\n    actions: [pull]\n');
    for (const user of ['007', 'yes', 'null']) expect(isAllowed(policy, user, 'pull', 'x')).toBe(true);
    expect(isAllowed(policy, '7', 'pull', 'x')).toBe(false);
  });

  it('names a missing file and what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rgw-access-'));
    try {
      const missing = await readAccessFile(join(dir, 'nope.yml'));
      expect(missing.problems.map(formatAccessProblem)).toEqual([`${join(dir, 'nope.yml')}: no such file; write one (see the README, "Access control") or leave --access out`]);
      await writeFile(join(dir, 'ok.yml'), EXAMPLE);
      expect((await readAccessFile(join(dir, 'ok.yml'))).policy?.rules).toHaveLength(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('@anonymous: requests without credentials (token mode)', () => {
  const policy = policyOf(`rules:
  - users: ["@anonymous"]
    repositories: ["public/*"]
    actions: [pull]
  - users: ["*"]
    repositories: ["library/*"]
    actions: [pull]
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push]
`);
  const requested = (...scopes: string[]): Grant => (parseScopes(scopes) as { requested: Grant }).requested;

  it('gets what rules naming @anonymous grant, and nothing from "*", which is every signed-in user', () => {
    expect(isAllowed(policy, ANONYMOUS, 'pull', 'public/app')).toBe(true);
    expect(isAllowed(policy, ANONYMOUS, 'push', 'public/app')).toBe(false);
    expect(isAllowed(policy, ANONYMOUS, 'pull', 'library/base')).toBe(false);
    expect(isAllowed(policy, 'bob', 'pull', 'library/base')).toBe(true);
    expect(isAllowed(policy, 'bob', 'pull', 'public/app')).toBe(false);
    expect(namesAnonymous(policy)).toBe(true);
    expect(namesAnonymous(policyOf(EXAMPLE))).toBe(false);
  });

  it('is explained by access check, saying that "*" leaves it out', () => {
    expect(explainDecision(policy, ANONYMOUS, 'pull', 'library/base').lines).toEqual([
      'denied: no rule grants pull on library/base to @anonymous',
      'rule 2 (line 5): users [*], repositories [library/*], actions [pull] grants it to "*", every signed-in user, which leaves out @anonymous (requests without credentials)',
      'rules that apply to @anonymous:',
      '  rule 1 (line 2): users [@anonymous], repositories [public/*], actions [pull]: no pattern matches library/base',
    ]);
  });

  it('cannot be defined as a group', () => {
    expect(problemsOf('groups:\n  anonymous: [bob]\nrules:\n  - users: [bob]\n    repositories: ["*"]\n    actions: [pull]\n')).toEqual([
      'access.yml:2: "anonymous" cannot be a group name: @anonymous is reserved for requests without credentials (token mode); name the group otherwise',
    ]);
  });

  it('makes the grant of a token: what was asked for and the rules allow; without an access file, everything for users and nothing for @anonymous', () => {
    const asked = requested('repository:public/app:pull,push', 'repository:team/x:pull', 'registry:catalog:*');
    expect(accessClaim(grantFor(policy, ANONYMOUS, asked))).toEqual([
      { type: 'repository', name: 'public/app', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    expect(accessClaim(grantFor(policy, 'alice', asked))).toEqual([
      { type: 'repository', name: 'public/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    expect(accessClaim(grantFor(null, 'bob', asked))).toEqual(accessClaim(asked));
    expect(accessClaim(grantFor(null, ANONYMOUS, asked))).toEqual([]);
    // The catalog only for whom some rule lets pull something.
    expect(grantFor(policyOf(EXAMPLE), ANONYMOUS, asked).catalog).toBe(false);
  });
});
