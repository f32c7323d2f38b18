// Whether a user may do an action on a repository: allowed when any rule grants it (the union of
// the rules; their order does not matter), and which rule that is, for logs and `access check`.

import { ANONYMOUS, type Grant } from '../registry/grant.js';
import { ACTIONS, type Action, type Need } from '../registry/routes.js';
import type { AccessPolicy, AccessRule } from './policy.js';

/** "*" is every signed-in user; requests without credentials (@anonymous) only get rules that name them. */
export function ruleAppliesTo(rule: AccessRule, user: string): boolean {
  return (rule.anyUser && user !== ANONYMOUS) || rule.members.has(user);
}

function grants(rule: AccessRule, user: string, action: Action, repository: string): boolean {
  return rule.actions.has(action) && ruleAppliesTo(rule, user) && rule.patterns.some((p) => p.matches(repository, user));
}

/** The first rule that grants the action, or null: refused. */
export function grantingRule(policy: AccessPolicy, user: string, action: Action, repository: string): AccessRule | null {
  for (const rule of policy.rules) if (grants(rule, user, action, repository)) return rule;
  return null;
}

export function isAllowed(policy: AccessPolicy, user: string, action: Action, repository: string): boolean {
  return grantingRule(policy, user, action, repository) !== null;
}

/** The first of a request's needs no rule grants, or null when all are granted. */
export function firstRefusedNeed(policy: AccessPolicy, user: string, needs: readonly Need[]): Need | null {
  for (const need of needs) if (!isAllowed(policy, user, need.action, need.repository)) return need;
  return null;
}

/**
 * What a token for this user may carry: the requested access the policy allows. Without a policy
 * every signed-in user may do everything and anonymous requests nothing. The catalog is granted
 * to whoever may see some of it: its listing is filtered to what they may pull.
 */
export function grantFor(policy: AccessPolicy | null, user: string, requested: Grant): Grant {
  const anonymous = user === ANONYMOUS;
  const repositories = new Map<string, Set<Action>>();
  for (const [repository, actions] of requested.repositories) {
    const allowed = ACTIONS.filter((a) => actions.has(a) && (policy === null ? !anonymous : isAllowed(policy, user, a, repository)));
    if (allowed.length > 0) repositories.set(repository, new Set(allowed));
  }
  const catalog = requested.catalog && (policy === null ? !anonymous : policy.rules.some((r) => r.actions.has('pull') && ruleAppliesTo(r, user)));
  return { repositories, catalog };
}

/** Whether any rule names requests without credentials (only token mode has them). */
export function namesAnonymous(policy: AccessPolicy): boolean {
  return policy.rules.some((r) => r.members.has(ANONYMOUS));
}

export function describeRule(rule: AccessRule): string {
  const list = (items: Iterable<string>) => `[${[...items].join(', ')}]`;
  return `rule ${rule.number} (line ${rule.line}): users ${list(rule.users)}, repositories ${list(rule.patterns.map((p) => p.source))}, actions ${list(rule.actions)}`;
}

/** Why the policy allows or refuses, in sentences for a person debugging it. */
export function explainDecision(policy: AccessPolicy, user: string, action: Action, repository: string): { allowed: boolean; lines: string[] } {
  const rule = grantingRule(policy, user, action, repository);
  if (rule !== null) return { allowed: true, lines: [`allowed: ${user} may ${action} ${repository}`, `granted by ${describeRule(rule)}`] };
  const lines = [`denied: no rule grants ${action} on ${repository} to ${user}`];
  if (user === ANONYMOUS) {
    const signedIn = policy.rules.find((r) => r.anyUser && r.actions.has(action) && r.patterns.some((p) => p.matches(repository, user)));
    if (signedIn) lines.push(`${describeRule(signedIn)} grants it to "*", every signed-in user, which leaves out ${ANONYMOUS} (requests without credentials)`);
  }
  const applying = policy.rules.filter((r) => ruleAppliesTo(r, user));
  if (applying.length === 0) {
    lines.push(user === ANONYMOUS ? `no rule names ${ANONYMOUS}` : `no rule names ${user}, a group of theirs, or "*"`);
    return { allowed: false, lines };
  }
  lines.push(`rules that apply to ${user}:`);
  for (const r of applying) {
    const matches = r.patterns.some((p) => p.matches(repository, user));
    const why = !matches ? `no pattern matches ${repository}` : `matches ${repository}, but grants no ${action}`;
    lines.push(`  ${describeRule(r)}: ${why}`);
  }
  return { allowed: false, lines };
}
