// Which access a registry request needs, from its method and canonical path, following the
// routes of the distribution API exactly as the registry's own router matches them: same route
// order, same name grammar. A request the registry would route differently from us could be
// authorized for one repository and served for another, so anything we cannot place is refused.

export type Action = 'pull' | 'push' | 'delete';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

export type RouteName = 'tags' | 'manifest' | 'blob' | 'referrers' | 'upload' | 'upload-session';

export interface Need {
  readonly repository: string;
  readonly action: Action;
}

export type RequestAccess =
  /** `/v2/`: the API check every client starts with; any authenticated user. */
  | { readonly kind: 'ping' }
  /** `/v2/_catalog`: allowed, its listing filtered to what the user may pull. */
  | { readonly kind: 'catalog' }
  | {
      readonly kind: 'repository';
      readonly route: RouteName;
      readonly repository: string;
      readonly action: Action;
      /** The tag or digest of a manifest, the digest of a blob; null for other routes. */
      readonly reference: string | null;
      /** Every access the request needs: its own, plus pull on the source of a blob mount. */
      readonly needs: readonly Need[];
    }
  | { readonly kind: 'unmapped'; readonly reason: string }
  /** A repository name (the route's, or a mount's source) longer than any the registry accepts. */
  | { readonly kind: 'invalid-name'; readonly reason: string };

export interface RegistryRequest {
  readonly method: string;
  /** Canonical path, without the query. */
  readonly path: string;
  /** The raw query, without "?"; '' when none. */
  readonly query: string;
}

/** distribution/reference NameTotalLengthMax: the registry refuses longer repository names. */
export const NAME_TOTAL_LENGTH_MAX = 255;
// "/v2/", a name of the longest kind, and more than the longest route tail the registry serves
// ("/manifests/" or "/referrers/" and a sha512 digest, 146 characters). A longer path names no
// repository the registry has, and it is refused before any route regular expression sees it.
const MAX_ROUTABLE_PATH = '/v2/'.length + NAME_TOTAL_LENGTH_MAX + 256;

// The distribution reference grammar (distribution/reference, v2.8). The registry's router accepts
// a host-like first component (upper case, a port) that no client sends; we match it the same way
// so routes split where the registry splits them, then refuse such names.
const ALNUM = '[a-z0-9]+';
// "[-]+" where the registry has "[-]*": the same language, without the exponential backtracking.
const COMPONENT = `${ALNUM}(?:(?:[._]|__|-+)${ALNUM})*`;
const DOMAIN_PART = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `${DOMAIN_PART}(?:\\.${DOMAIN_PART})*(?::[0-9]+)?`;
const ROUTER_NAME = `(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*`;
const REPOSITORY_NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

/** Routes in the order the registry's router tries them; the first that matches decides. */
const ROUTES: ReadonlyArray<{ readonly name: RouteName; readonly re: RegExp; readonly methods: Readonly<Record<string, Action>> }> = [
  { name: 'tags', re: new RegExp(`^/v2/(${ROUTER_NAME})/tags/list$`), methods: { GET: 'pull', HEAD: 'pull' } },
  {
    name: 'manifest',
    re: new RegExp(`^/v2/(${ROUTER_NAME})/manifests/(${TAG}|${DIGEST})$`),
    methods: { GET: 'pull', HEAD: 'pull', PUT: 'push', DELETE: 'delete' },
  },
  { name: 'blob', re: new RegExp(`^/v2/(${ROUTER_NAME})/blobs/(${DIGEST})$`), methods: { GET: 'pull', HEAD: 'pull', DELETE: 'delete' } },
  { name: 'upload', re: new RegExp(`^/v2/(${ROUTER_NAME})/blobs/uploads/$`), methods: { POST: 'push' } },
  // Status, chunks, completion and cancelling of an upload are all part of pushing: cancelling
  // one deletes nothing that was stored.
  {
    name: 'upload-session',
    re: new RegExp(`^/v2/(${ROUTER_NAME})/blobs/uploads/([a-zA-Z0-9-_.=]+)$`),
    methods: { GET: 'push', HEAD: 'push', PATCH: 'push', PUT: 'push', DELETE: 'push' },
  },
  // OCI distribution 1.1; a registry without it answers 404.
  { name: 'referrers', re: new RegExp(`^/v2/(${ROUTER_NAME})/referrers/(${DIGEST})$`), methods: { GET: 'pull', HEAD: 'pull' } },
];

/** Whether a request path is longer than any whose repository name the registry would take. */
export function isOverlongPath(path: string): boolean {
  return path.length > MAX_ROUTABLE_PATH;
}

/** Whether a path is long enough to hold a repository name longer than the registry takes. */
export function mayHoldOverlongName(path: string): boolean {
  return path.length > '/v2/'.length + NAME_TOTAL_LENGTH_MAX;
}

export function isRepositoryName(name: string): boolean {
  return REPOSITORY_NAME.test(name);
}

/** The access a request to the registry API needs. */
export function requestAccess(request: RegistryRequest): RequestAccess {
  const { method, path } = request;
  if (path === '/v2' || path === '/v2/') return { kind: 'ping' };
  if (path === '/v2/_catalog') {
    return method === 'GET' || method === 'HEAD' ? { kind: 'catalog' } : { kind: 'unmapped', reason: `${method} on the catalog` };
  }
  // Parameters the registry could read from a body instead of the query are kept out by
  // bodyTypeProblem (body-type.ts), before this.
  if (isOverlongPath(path)) return { kind: 'invalid-name', reason: `a path of ${path.length} characters, too long for any repository name` };
  for (const route of ROUTES) {
    const match = route.re.exec(path);
    if (!match) continue;
    const repository = match[1]!;
    const action = route.methods[method];
    if (action === undefined) return { kind: 'unmapped', reason: `${method} on a ${route.name} path` };
    if (repository.length > NAME_TOTAL_LENGTH_MAX) return { kind: 'invalid-name', reason: tooLong('the repository name', repository) };
    if (!isRepositoryName(repository)) return { kind: 'unmapped', reason: `${JSON.stringify(repository)} is not a repository name` };
    const needs: Need[] = [{ repository, action }];
    if (route.name === 'upload') {
      const mount = mountSources(request.query);
      if (!mount.ok) return mount.tooLong ? { kind: 'invalid-name', reason: mount.reason } : { kind: 'unmapped', reason: mount.reason };
      for (const source of mount.sources) needs.push({ repository: source, action: 'pull' });
    }
    const reference = route.name === 'manifest' || route.name === 'blob' || route.name === 'referrers' ? match[2]! : null;
    return { kind: 'repository', route: route.name, repository, action, reference, needs };
  }
  return { kind: 'unmapped', reason: 'not a route of the registry API' };
}

export type MountSources = { readonly ok: true; readonly sources: string[] } | { readonly ok: false; readonly tooLong: boolean; readonly reason: string };

/**
 * Every repository a cross-repository mount (`?mount=DIGEST&from=REPO`) could read from, or why
 * one is not a repository name. Read more loosely than the registry does (";" also splits, every
 * "from" counts, not only the first), so no spelling of the query hides a source from us.
 */
export function mountSources(query: string): MountSources {
  const sources: string[] = [];
  for (const pair of query.split(/[&;]/)) {
    const eq = pair.indexOf('=');
    const key = decodeQueryPart(eq === -1 ? pair : pair.slice(0, eq));
    if (key === null) return { ok: false, tooLong: false, reason: 'a query parameter name that does not decode' };
    if (key.toLowerCase() !== 'from') continue;
    const value = decodeQueryPart(eq === -1 ? '' : pair.slice(eq + 1));
    if (value !== null && value.length > NAME_TOTAL_LENGTH_MAX) return { ok: false, tooLong: true, reason: tooLong('the "from" parameter', value) };
    if (value === null || !isRepositoryName(value)) return { ok: false, tooLong: false, reason: 'a "from" parameter that is not a repository name' };
    sources.push(value);
  }
  return { ok: true, sources };
}

function tooLong(what: string, name: string): string {
  return `${what} has ${name.length} characters; the registry allows at most ${NAME_TOTAL_LENGTH_MAX}`;
}

function decodeQueryPart(text: string): string | null {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return null;
  }
}
