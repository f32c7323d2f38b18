// What a bearer token grants, in the terms of the distribution token spec: scopes as clients ask
// for them (`repository:NAME:pull,push`, `registry:catalog:*`) and the `access` claim that carries
// what was granted. Also whether a grant covers a request, through the same route table that the
// access file is checked against, so a token can never reach further than its scope says.

import { ACTIONS, isRepositoryName, NAME_TOTAL_LENGTH_MAX, type Action, type Need, type RequestAccess } from './routes.js';

/** The principal of a request without credentials, as access files name it. */
export const ANONYMOUS = '@anonymous';

/** Where the gateway's token service answers (`--auth token`), on its own origin: the challenge's realm. */
export const TOKEN_PATH = '/token';

/** Requested or granted access: actions per repository, and the catalog. */
export interface Grant {
  readonly repositories: ReadonlyMap<string, ReadonlySet<Action>>;
  readonly catalog: boolean;
}

/** One entry of a token's `access` claim. */
export interface AccessEntry {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

export const NO_GRANT: Grant = Object.freeze({ repositories: new Map(), catalog: false });

// Far more than any client asks for at once (docker asks for two or three): a longer list is an attack.
export const MAX_SCOPES = 64;
const MAX_SCOPE_CHARS = 512;

export type ParsedScopes = { readonly ok: true; readonly requested: Grant } | { readonly ok: false; readonly reason: string };

/**
 * The scopes of a token request: `scope` parameters, each holding one or more space-separated
 * scopes (OAuth2 joins them with spaces). Types other than `repository` and `registry:catalog`,
 * unknown actions and names that are no repository name are dropped, not errors: what is not
 * understood is simply not granted.
 */
export function parseScopes(values: readonly string[]): ParsedScopes {
  const repositories = new Map<string, Set<Action>>();
  let catalog = false;
  let count = 0;
  for (const value of values) {
    for (const scope of value.split(' ')) {
      if (scope === '') continue;
      if (++count > MAX_SCOPES) return { ok: false, reason: `more than ${MAX_SCOPES} scopes in one request` };
      if (scope.length > MAX_SCOPE_CHARS) return { ok: false, reason: `a scope of ${scope.length} characters; at most ${MAX_SCOPE_CHARS}` };
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first === -1 || first === last) continue;
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const actions = scope.slice(last + 1).split(',');
      if (type === 'registry' && name === 'catalog' && actions.includes('*')) catalog = true;
      // `repository(plugin)` is docker's resource class for plugins: still a repository.
      if (type !== 'repository' && !/^repository\([a-z0-9]+\)$/.test(type)) continue;
      if (name.length > NAME_TOTAL_LENGTH_MAX || !isRepositoryName(name)) continue;
      const wanted = actions.includes('*') ? ACTIONS : ACTIONS.filter((a) => actions.includes(a));
      if (wanted.length === 0) continue;
      const set = repositories.get(name) ?? new Set<Action>();
      for (const action of wanted) set.add(action);
      repositories.set(name, set);
    }
  }
  return { ok: true, requested: { repositories, catalog } };
}

/** The `access` claim of a token granting this. */
export function accessClaim(grant: Grant): AccessEntry[] {
  const entries: AccessEntry[] = [];
  for (const [name, actions] of grant.repositories) {
    if (actions.size > 0) entries.push({ type: 'repository', name, actions: ACTIONS.filter((a) => actions.has(a)) });
  }
  if (grant.catalog) entries.push({ type: 'registry', name: 'catalog', actions: ['*'] });
  return entries;
}

/** The grant an `access` claim holds, or null when it is not one the gateway issues. */
export function grantFromClaim(claim: unknown): Grant | null {
  if (!Array.isArray(claim) || claim.length > MAX_SCOPES + 1) return null;
  const repositories = new Map<string, Set<Action>>();
  let catalog = false;
  for (const entry of claim as unknown[]) {
    if (typeof entry !== 'object' || entry === null) return null;
    const { type, name, actions } = entry as Record<string, unknown>;
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(actions) || !actions.every((a) => typeof a === 'string')) return null;
    if (type === 'registry' && name === 'catalog') {
      catalog ||= actions.includes('*');
    } else if (type === 'repository' && isRepositoryName(name)) {
      const set = repositories.get(name) ?? new Set<Action>();
      for (const action of ACTIONS) if (actions.includes(action)) set.add(action);
      repositories.set(name, set);
    } else {
      return null;
    }
  }
  return { repositories, catalog };
}

/**
 * What of a request a grant does not cover: null when covered, else the scope a token would need
 * (for the challenge's `scope`). The ping needs nothing beyond a valid token.
 */
export function uncoveredScope(grant: Grant, access: RequestAccess): string | null {
  switch (access.kind) {
    case 'ping':
      return null;
    case 'catalog':
      return grant.catalog ? null : 'registry:catalog:*';
    case 'repository': {
      const missing = access.needs.find((need) => !covers(grant, need));
      return missing === undefined ? null : scopeOf(access, missing);
    }
    default:
      // Refused later on its own grounds (unmapped, an invalid name): no scope would help.
      return null;
  }
}

function covers(grant: Grant, need: Need): boolean {
  return grant.repositories.get(need.repository)?.has(need.action) ?? false;
}

/** The scope to ask a token for: pull and push together for a push, as docker asks. */
function scopeOf(access: Extract<RequestAccess, { kind: 'repository' }>, need: Need): string {
  const actions = need.repository === access.repository && need.action === 'push' ? 'pull,push' : need.action;
  return `repository:${need.repository}:${actions}`;
}

/** The scope a request needs, for the challenge to a request without a token; null when it names nothing. */
export function requestScope(access: RequestAccess): string | null {
  if (access.kind === 'catalog') return 'registry:catalog:*';
  if (access.kind !== 'repository') return null;
  return scopeOf(access, { repository: access.repository, action: access.action });
}
