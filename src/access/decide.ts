// Whether a user may do an action on a repository: allowed when any rule grants it (the union of
// the rules; their order does not matter), and which rule that is, for logs and `access check`.

import type { Action, Need } from '../registry/routes.js';
import type { AccessPolicy, AccessRule } from './policy.js';

export function ruleAppliesTo(rule: AccessRule, user: string): boolean {
  return rule.anyUser || rule.members.has(user);
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

export function describeRule(rule: AccessRule): string {
  const list = (items: Iterable<string>) => `[${[...items].join(', ')}]`;
  return `rule ${rule.number} (line ${rule.line}): users ${list(rule.users)}, repositories ${list(rule.patterns.map((p) => p.source))}, actions ${list(rule.actions)}`;
}

/** Why the policy allows or refuses, in sentences for a person debugging it. */
export function explainDecision(policy: AccessPolicy, user: string, action: Action, repository: string): { allowed: boolean; lines: string[] } {
  const rule = grantingRule(policy, user, action, repository);
  if (rule !== null) return { allowed: true, lines: [`allowed: ${user} may ${action} ${repository}`, `granted by ${describeRule(rule)}`] };
  const lines = [`denied: no rule grants ${action} on ${repository} to ${user}`];
  const applying = policy.rules.filter((r) => ruleAppliesTo(r, user));
  if (applying.length === 0) {
    lines.push(`no rule names ${user}, a group of theirs, or "*"`);
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
