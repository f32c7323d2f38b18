// The catalog, filtered to the repositories the user may pull. The registry pages its catalog
// (`?n=`, `&last=`, a `Link: <...>; rel="next"`); a page filtered as it stands would come back
// short, and its Link would carry the last name of the unfiltered page, which may be one the user
// must not see. So the gateway reads registry pages (large ones) until it has n names the user
// may pull, the catalog ends, or it has read a bounded number of pages, and writes its own Link.
// Its `last` is the last name the user was shown, or, when the bound stopped the walk first, a
// sealed cursor (catalog-cursor.ts) that continues after the last name read without showing it.
// A user who sees few repositories behind many hidden ones thus costs the registry a few requests
// per page, not one per hidden page. Catalog bodies are small JSON read whole, up to a cap.

import http from 'node:http';
import { declaresBody } from '../registry/context.js';
import { failure } from '../registry/failure.js';
import { API_VERSION, API_VERSION_HEADER, sendJson, sendRegistryError } from '../registry/answers.js';
import type { ForwardSettings, ForwardState } from './forward.js';
import { buildClientResponseHeaders, buildUpstreamRequestHeaders, unwritableHeader } from './headers.js';
import { describeUpstreamFailure, upstreamRequestOptions, upstreamTimeout } from './upstream.js';
import { isCursor, openCursor, sealCursor } from './catalog-cursor.js';
import { rewriteForHost } from './rewrite.js';

/** Upstream catalog pages are read whole, up to this; more is refused as unusable (502). */
export const MAX_CATALOG_PAGE_BYTES = 4 * 1024 * 1024;
/** The registry's page size when a client gives no `n` (distribution's defaultReturnedEntries). */
export const DEFAULT_PAGE_SIZE = 100;

/**
 * How the gateway walks the registry's catalog for one request. Distribution 2.8 serves pages of
 * up to 1000 names (`catalog.maxentries`); five of them bound the registry work one request
 * causes. Tests lower both to reach the bound with a few hundred repositories.
 */
export const CATALOG_WALK = {
  upstreamPageSize: 1000,
  maxUpstreamPages: 5,
};

// Registries configured with a smaller catalog.maxentries refuse our n (400); they are asked
// without one from then on, and page by their own default.
const refusesLargePages = new Set<string>();

interface UpstreamPage {
  readonly status: number;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

export interface CatalogPage {
  readonly repositories: readonly string[];
  /** The upstream's next page (path and query), or null at the end. */
  readonly next: string | null;
}

/** The repositories and next-page target of a 200 catalog answer, or null when it is not one. */
export function parseCatalogPage(body: Buffer, linkHeader: string | string[] | undefined): CatalogPage | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  const repositories = (parsed as { repositories?: unknown } | null)?.repositories;
  if (!Array.isArray(repositories) || !repositories.every((r) => typeof r === 'string')) return null;
  return { repositories, next: nextTarget(linkHeader) };
}

/** Path and query of a `rel="next"` Link, whatever origin the registry put on it. */
export function nextTarget(linkHeader: string | string[] | undefined): string | null {
  for (const value of [linkHeader ?? []].flat()) {
    const match = /<([^>]*)>\s*;[^,]*rel="?next"?/i.exec(value);
    if (!match) continue;
    const url = new URL(match[1]!, 'http://upstream.invalid');
    if (url.pathname === '/v2/_catalog') return url.pathname + url.search;
  }
  return null;
}

/**
 * The page size a client asked for, read as distribution 2.8 reads it: an integer (Go's Atoi, so
 * "+5" and "007" count) of 0 or more; anything else, or none, is the default.
 */
export function pageSize(query: string): number {
  const n = new URLSearchParams(query).get('n');
  return n !== null && /^\+?[0-9]{1,15}$/.test(n) ? Number(n) : DEFAULT_PAGE_SIZE;
}

export interface FilteredAnswer {
  readonly repositories: string[];
  /** Our own next-page target, or null when the user has seen everything they may. */
  readonly next: string | null;
}

export interface Walked {
  /** Names the user may pull, in the registry's order, from every page read. */
  readonly allowed: readonly string[];
  /** The last name read from the registry, shown or not; null when none was. */
  readonly lastRead: string | null;
  /** Whether the registry has names after lastRead. */
  readonly upstreamHasMore: boolean;
}

/**
 * The answer once the walk stopped: the first `limit` names, and a Link after the last of them,
 * or (when fewer were found before the page bound) after the last name read, sealed. The Link
 * carries the client's n, if it gave one.
 */
export function pageOfAllowed(walked: Walked, limit: number, clientN: string | null): FilteredAnswer {
  const repositories = walked.allowed.slice(0, limit);
  const withN = clientN === null ? '' : `&n=${encodeURIComponent(clientN)}`;
  if (walked.allowed.length >= limit && limit > 0 && (walked.allowed.length > limit || walked.upstreamHasMore)) {
    return { repositories, next: `/v2/_catalog?last=${encodeURIComponent(repositories[repositories.length - 1]!)}${withN}` };
  }
  if (walked.allowed.length < limit && walked.upstreamHasMore && walked.lastRead !== null) {
    return { repositories, next: `/v2/_catalog?last=${encodeURIComponent(sealCursor(walked.lastRead))}${withN}` };
  }
  return { repositories, next: null };
}

/** The registry page after `last`, as a request target. */
function upstreamTarget(last: string, pageSizeAllowed: boolean): string {
  const params = new URLSearchParams();
  if (pageSizeAllowed) params.set('n', String(CATALOG_WALK.upstreamPageSize));
  if (last !== '') params.set('last', last);
  const query = params.toString();
  return query === '' ? '/v2/_catalog' : `/v2/_catalog?${query}`;
}

function fetchPage(req: http.IncomingMessage, signal: AbortSignal, state: ForwardState, settings: ForwardSettings, target: string): Promise<UpstreamPage> {
  const { upstream } = settings;
  const headers = buildUpstreamRequestHeaders(req.rawHeaders, { clientAddress: state.remoteAddress, host: settings.forwardedHost });
  // We read the body ourselves: it must come as plain JSON.
  headers['accept-encoding'] = 'identity';
  // Our requests carry no body, whatever the client's did: a length promised and never sent
  // would leave the registry waiting for it.
  for (const name of ['content-length', 'transfer-encoding', 'content-type']) delete headers[name];
  return new Promise((resolve, reject) => {
    const upstreamReq = http.request({ ...upstreamRequestOptions(upstream, 'GET', target, headers, true), signal }, (upstreamRes) => {
      const chunks: Buffer[] = [];
      let size = 0;
      upstreamRes.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_CATALOG_PAGE_BYTES) upstreamReq.destroy(new Error(`catalog page larger than ${MAX_CATALOG_PAGE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      upstreamRes.on('end', () => resolve({ status: upstreamRes.statusCode ?? 502, rawHeaders: upstreamRes.rawHeaders, body: Buffer.concat(chunks) }));
      upstreamRes.on('error', reject);
      upstreamRes.on('close', () => {
        if (!upstreamRes.complete) reject(new Error('the upstream closed before the end of the catalog'));
      });
    });
    upstreamReq.setTimeout(upstream.timeoutMs, () => upstreamReq.destroy(upstreamTimeout(upstream)));
    upstreamReq.on('error', reject);
    upstreamReq.end();
  });
}

/**
 * Answers `GET`/`HEAD /v2/_catalog` with only the repositories `mayPull` accepts. A non-200
 * answer of the registry is passed on as it is.
 */
export async function forwardCatalog(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  state: ForwardState,
  settings: ForwardSettings,
  mayPull: (repository: string) => boolean,
): Promise<void> {
  const rawQuery = state.query ?? '';
  const query = new URLSearchParams(rawQuery);
  const limit = pageSize(rawQuery);
  let last = query.get('last') ?? '';
  if (isCursor(last)) {
    const opened = openCursor(last);
    if (opened === null) return refuseCursor(res, state);
    last = opened;
  }
  // A client that goes away stops the walk.
  const gone = new AbortController();
  res.once('close', () => gone.abort());
  let walked: Walked;
  try {
    const outcome = await walk(req, gone.signal, state, settings, mayPull, last, limit);
    if ('status' in outcome) return relayAsIs(req, res, state, settings, outcome);
    walked = outcome;
  } catch (err) {
    if (res.destroyed) return;
    fail(req, res, state, settings, err);
    return;
  }
  answer(req, res, state, settings, pageOfAllowed(walked, limit, query.get('n')));
}

/**
 * Reads registry pages after `last` until `limit` names the user may pull were found, the catalog
 * ends, or the page bound is reached; or the first answer that is not a catalog page, to relay.
 */
async function walk(
  req: http.IncomingMessage,
  signal: AbortSignal,
  state: ForwardState,
  settings: ForwardSettings,
  mayPull: (repository: string) => boolean,
  last: string,
  limit: number,
): Promise<Walked | UpstreamPage> {
  const allowed: string[] = [];
  let lastRead: string | null = null;
  let upstreamHasMore = limit > 0;
  for (let pages = 0; upstreamHasMore && allowed.length < limit && pages < CATALOG_WALK.maxUpstreamPages; pages++) {
    const page = await fetchCatalogPage(req, signal, state, settings, lastRead ?? last);
    state.upstreamStatus = page.status;
    if (page.status !== 200) return page;
    const parsed = parseCatalogPage(page.body, headerValues(page.rawHeaders, 'link'));
    if (parsed === null) throw new Error('the upstream answered the catalog with something other than a catalog');
    for (const repository of parsed.repositories) if (mayPull(repository)) allowed.push(repository);
    const pageLast = parsed.repositories[parsed.repositories.length - 1];
    // An empty page that claims more, or one that does not move on, would keep us here for ever.
    upstreamHasMore = parsed.next !== null && pageLast !== undefined && pageLast !== lastRead;
    if (pageLast !== undefined) lastRead = pageLast;
  }
  return { allowed, lastRead, upstreamHasMore };
}

/** One registry page; asked again without n when the registry refuses our page size. */
async function fetchCatalogPage(req: http.IncomingMessage, signal: AbortSignal, state: ForwardState, settings: ForwardSettings, last: string): Promise<UpstreamPage> {
  const origin = settings.upstream.origin;
  if (!refusesLargePages.has(origin)) {
    const page = await fetchPage(req, signal, state, settings, upstreamTarget(last, true));
    if (page.status !== 400 || !page.body.toString('utf8').includes('PAGINATION_NUMBER_INVALID')) return page;
    refusesLargePages.add(origin);
  }
  return fetchPage(req, signal, state, settings, upstreamTarget(last, false));
}

function answer(req: http.IncomingMessage, res: http.ServerResponse, state: ForwardState, settings: ForwardSettings, page: FilteredAnswer): void {
  const body = JSON.stringify({ repositories: page.repositories });
  const headers: http.OutgoingHttpHeaders = { [API_VERSION_HEADER]: API_VERSION };
  if (page.next !== null) headers.link = `<${rewriteForHost(settings.rewrite, req.headers.host).publicOrigin ?? ''}${page.next}>; rel="next"`;
  if (req.method === 'HEAD') {
    for (const [name, value] of Object.entries({ ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })) res.setHeader(name, value);
    res.writeHead(200);
    res.end();
    return;
  }
  state.bytesOut = Buffer.byteLength(body);
  sendJson(res, 200, body, headers);
}

/** A cursor this gateway run did not seal: from before a restart, or made up. */
function refuseCursor(res: http.ServerResponse, state: ForwardState): void {
  state.failure = failure('catalog-cursor', 'catalog cursor that does not open');
  sendRegistryError(res, 400, 'UNSUPPORTED', 'this catalog page link is no longer valid (the gateway restarted); list the catalog again from the start');
}

function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!);
  return values;
}

function relayAsIs(req: http.IncomingMessage, res: http.ServerResponse, state: ForwardState, settings: ForwardSettings, page: UpstreamPage): void {
  const headers = buildClientResponseHeaders(page.rawHeaders, { ...rewriteForHost(settings.rewrite, req.headers.host), status: page.status, challenge: settings.challenge, registryApi: true });
  headers['content-length'] = page.body.length;
  delete headers['transfer-encoding'];
  if (unwritableHeader(headers) !== null) {
    fail(req, res, state, settings, new Error('unusable header in the catalog answer'));
    return;
  }
  res.writeHead(page.status, headers);
  state.bytesOut = req.method === 'HEAD' ? 0 : page.body.length;
  res.end(req.method === 'HEAD' ? undefined : page.body);
}

function fail(req: http.IncomingMessage, res: http.ServerResponse, state: ForwardState, settings: ForwardSettings, err: unknown): void {
  const described = describeUpstreamFailure(err);
  const known = described.status !== 502 || described.kind === 'upstream-bad-response' || (err as NodeJS.ErrnoException)?.code !== undefined;
  const message = known ? described.message : 'upstream registry sent an unusable response';
  state.failure = known ? described : failure('upstream-bad-response', `unusable catalog: ${(err as Error).message}`);
  settings.log.error({ upstream: settings.upstream.origin, reason: state.failure.detail, path: '/v2/_catalog' }, message);
  sendRegistryError(res, described.status === 408 ? 502 : described.status, 'UNAVAILABLE', message, declaresBody(req) ? { connection: 'close' } : {});
}
