// The access file: YAML, read with line positions so every problem names the line to fix. All
// problems are collected at once. Unknown keys, actions and groups are errors, never ignored: a
// misspelt "repositroies" must not silently grant or refuse anything.

import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml';
import { ANONYMOUS } from '../registry/grant.js';
import { ACTIONS, type Action } from '../registry/routes.js';
import { compilePattern, patternProblem, type RepositoryPattern } from './glob.js';

export interface AccessRule {
  /** 1-based position among the rules, and the line it starts on. */
  readonly number: number;
  readonly line: number;
  /** As written: names, "@group" and "*". */
  readonly users: readonly string[];
  readonly patterns: readonly RepositoryPattern[];
  readonly actions: ReadonlySet<Action>;
  readonly anyUser: boolean;
  /** Users named directly or through a group. */
  readonly members: ReadonlySet<string>;
}

export interface AccessPolicy {
  readonly file: string;
  readonly groups: ReadonlyMap<string, readonly string[]>;
  readonly rules: readonly AccessRule[];
}

export interface AccessProblem {
  readonly file: string;
  /** 0 when the problem is the file as a whole (unreadable, say). */
  readonly line: number;
  readonly reason: string;
}

export type ParsedAccess = { policy: AccessPolicy; problems: readonly [] } | { policy: null; problems: readonly AccessProblem[] };

export function formatAccessProblem(p: AccessProblem): string {
  return `${p.line > 0 ? `${p.file}:${p.line}` : p.file}: ${p.reason}`;
}

const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const RULE_KEYS = ['users', 'repositories', 'actions'] as const;
const EXAMPLE = 'rules:\n  - users: [alice]\n    repositories: ["*"]\n    actions: [pull, push, delete]';

/** Parses the text of an access file; `file` only names it in problems. */
export function parseAccessPolicy(text: string, file: string): ParsedAccess {
  const lines = new LineCounter();
  // The failsafe schema reads every scalar as the text written: a user named 007, yes or null
  // stays that name instead of becoming a number, a boolean or nothing.
  const doc = parseDocument(text, { lineCounter: lines, schema: 'failsafe', uniqueKeys: true, prettyErrors: true });
  const problems: AccessProblem[] = [];
  const lineOf = (node: Node | null | undefined): number => (node?.range ? lines.linePos(node.range[0]).line : 0);
  const problem = (node: Node | null | undefined, reason: string) => problems.push({ file, line: lineOf(node), reason });
  for (const err of doc.errors) problems.push({ file, line: err.linePos?.[0].line ?? 0, reason: `not valid YAML: ${err.message.split('\n')[0]}` });
  if (problems.length > 0) return { policy: null, problems };

  const root = doc.contents;
  if (!isMap(root)) {
    problem(root, `an access file is a map with "groups" (optional) and "rules", for example:\n${EXAMPLE}`);
    return { policy: null, problems };
  }
  let groupsNode: Node | null = null;
  let rulesNode: Node | null = null;
  for (const pair of root.items) {
    const key = scalarText(pair.key);
    if (key === 'groups') groupsNode = pair.value as Node | null;
    else if (key === 'rules') rulesNode = pair.value as Node | null;
    else problem(pair.key as Node, `unknown key ${JSON.stringify(key ?? '?')}; an access file has "groups" and "rules"`);
  }
  const groups = readGroups(groupsNode, problem);
  const rules = rulesNode === null ? [] : readRules(rulesNode, groups, problem, lineOf);
  if (rulesNode === null || (isSeq(rulesNode) && rulesNode.items.length === 0)) {
    problem(rulesNode ?? root, 'no rules: every request would be refused; add rules (to let every user do everything, leave --access out)');
  }
  if (problems.length > 0) return { policy: null, problems };
  return { policy: { file, groups, rules }, problems: [] };
}

type Report = (node: Node | null | undefined, reason: string) => void;

/** The text of a scalar; null for anything else (a list, a map, an alias). */
function scalarText(node: unknown): string | null {
  return isScalar(node) && typeof node.value === 'string' ? node.value : null;
}

/** The strings of a list, reporting each item that is not one. */
function stringList(node: Node | null, what: string, example: string, report: Report): Array<{ text: string; node: Node }> {
  if (isAlias(node)) {
    report(node, `${what}: YAML aliases (*name) are not supported; use a group for users named more than once`);
    return [];
  }
  if (!isSeq(node)) {
    report(node, `${what} must be a list, e.g. ${example}`);
    return [];
  }
  if (node.items.length === 0) report(node, `${what} is an empty list, so the rule grants nothing; e.g. ${example}`);
  const out: Array<{ text: string; node: Node }> = [];
  for (const item of node.items as Node[]) {
    const text = scalarText(item);
    if (text === null) report(item, `${what}: each item must be a single name, e.g. ${example}`);
    else out.push({ text, node: item });
  }
  return out;
}

function userNameProblem(name: string): string | null {
  if (name === '') return 'an empty user name';
  if (name.includes(':') || /\s/.test(name)) return `${JSON.stringify(name)} cannot be a user name (no ":" or spaces)`;
  return null;
}

function readGroups(node: Node | null, report: Report): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  if (node === null) return groups;
  if (!isMap(node)) {
    report(node, 'groups must be a map of group names to lists of users, e.g. groups: { ci: [robot-ci, robot-deploy] }');
    return groups;
  }
  for (const pair of (node as YAMLMap).items) {
    const name = scalarText(pair.key);
    if (name === null || !GROUP_NAME.test(name)) {
      report(pair.key as Node, `${JSON.stringify(name ?? '?')} cannot be a group name: use letters, digits, ".", "_" and "-"`);
      continue;
    }
    if (`@${name}` === ANONYMOUS) {
      report(pair.key as Node, `"${name}" cannot be a group name: ${ANONYMOUS} is reserved for requests without credentials (token mode); name the group otherwise`);
      continue;
    }
    const members: string[] = [];
    for (const { text, node: item } of stringList(pair.value as Node | null, `group "${name}"`, `${name}: [alice, bob]`, report)) {
      if (text.startsWith('@') || text === '*') report(item, `group "${name}" lists ${JSON.stringify(text)}: groups hold user names only`);
      else if (userNameProblem(text) !== null) report(item, `group "${name}": ${userNameProblem(text)}`);
      else members.push(text);
    }
    groups.set(name, members);
  }
  return groups;
}

function readRules(node: Node, groups: ReadonlyMap<string, readonly string[]>, report: Report, lineOf: (n: Node) => number): AccessRule[] {
  if (!isSeq(node)) {
    report(node, `rules must be a list of rules, for example:\n${EXAMPLE}`);
    return [];
  }
  const rules: AccessRule[] = [];
  (node.items as Node[]).forEach((item, i) => {
    const number = i + 1;
    if (!isMap(item)) {
      report(item, `rule ${number} must be a map with users, repositories and actions`);
      return;
    }
    const fields = new Map<string, Node | null>();
    for (const pair of item.items) {
      const key = scalarText(pair.key);
      if (key !== null && (RULE_KEYS as readonly string[]).includes(key)) fields.set(key, pair.value as Node | null);
      else report(pair.key as Node, `rule ${number}: unknown key ${JSON.stringify(key ?? '?')}; a rule has users, repositories and actions`);
    }
    for (const key of RULE_KEYS) if (!fields.has(key)) report(item, `rule ${number} has no "${key}"`);
    const rule = compileRule(number, lineOf(item), fields, groups, report);
    if (rule !== null) rules.push(rule);
  });
  return rules;
}

function compileRule(
  number: number,
  line: number,
  fields: ReadonlyMap<string, Node | null>,
  groups: ReadonlyMap<string, readonly string[]>,
  report: Report,
): AccessRule | null {
  const users: string[] = [];
  const members = new Set<string>();
  let anyUser = false;
  const usersNode = fields.get('users');
  for (const { text, node } of usersNode === undefined ? [] : stringList(usersNode, `rule ${number}: users`, 'users: [alice, "@ci"]', report)) {
    users.push(text);
    if (text === '*') anyUser = true;
    else if (text === ANONYMOUS) members.add(ANONYMOUS);
    else if (text.startsWith('@')) {
      const group = groups.get(text.slice(1));
      if (group === undefined) report(node, `rule ${number}: unknown group ${JSON.stringify(text)}; define it under groups:`);
      else for (const member of group) members.add(member);
    } else if (userNameProblem(text) !== null) report(node, `rule ${number}: ${userNameProblem(text)}`);
    else members.add(text);
  }
  const patterns: RepositoryPattern[] = [];
  const reposNode = fields.get('repositories');
  for (const { text, node } of reposNode === undefined ? [] : stringList(reposNode, `rule ${number}: repositories`, 'repositories: ["team-a/*"]', report)) {
    const why = patternProblem(text);
    if (why === null) patterns.push(compilePattern(text));
    else report(node, `rule ${number}: ${why}`);
  }
  const actions = new Set<Action>();
  const actionsNode = fields.get('actions');
  for (const { text, node } of actionsNode === undefined ? [] : stringList(actionsNode, `rule ${number}: actions`, 'actions: [pull, push]', report)) {
    if ((ACTIONS as readonly string[]).includes(text)) actions.add(text as Action);
    else report(node, `rule ${number}: unknown action ${JSON.stringify(text)}; the actions are ${ACTIONS.join(', ')}`);
  }
  if (fields.size !== RULE_KEYS.length || users.length === 0 || patterns.length === 0 || actions.size === 0) return null;
  return { number, line, users, patterns, actions, anyUser, members };
}

/** Reads and parses an access file; a missing or unreadable file is one problem on line 0. */
export async function readAccessFile(file: string): Promise<ParsedAccess> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file; write one (see the README, "Access control") or leave --access out' : `cannot read it (${code ?? (err as Error).message})`;
    return { policy: null, problems: [{ file, line: 0, reason }] };
  }
  return parseAccessPolicy(text, file);
}
