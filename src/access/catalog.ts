// The catalog, filtered to the repositories the user may pull. The registry pages its catalog
// (`?n=`, `&last=`, a `Link: <...>; rel="next"`); a page filtered as it stands would come back
// short, and its Link would carry the last name of the unfiltered page, which may be one the user
// must not see. So the gateway reads upstream pages until it has n names the user may pull (or
// the catalog ends) and writes its own Link, whose `last` is always a name the user was shown.
// Catalog bodies are small JSON and read whole, up to a cap; never a blob.

import http from 'node:http';
import { declaresBody } from '../server/context.js';
import { sendJson, sendRegistryError } from '../server/responses.js';
import type { ForwardSettings, ForwardState } from '../proxy/forward.js';
import { API_VERSION, API_VERSION_HEADER, buildClientResponseHeaders, buildUpstreamRequestHeaders, unwritableHeader } from '../proxy/headers.js';
import { describeUpstreamFailure, upstreamRequestOptions, upstreamTimeout } from '../proxy/upstream.js';

/** Upstream catalog pages are read whole, up to this; more is refused as unusable (502). */
export const MAX_CATALOG_PAGE_BYTES = 4 * 1024 * 1024;
/** The names gathered for one answer when neither the client nor the registry sets a page size. */
const MAX_ANSWER_NAMES = 100_000;

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

/** The `n` a client asked for, or null for none (or one the registry will refuse itself). */
export function pageSize(query: string): number | null {
  const n = new URLSearchParams(query).get('n');
  return n !== null && /^[1-9][0-9]{0,8}$/.test(n) ? Number(n) : null;
}

export interface FilteredAnswer {
  readonly repositories: string[];
  /** Our own next-page target, or null when the user has seen everything they may. */
  readonly next: string | null;
}

/**
 * Picks the answer once enough names were gathered: the first `limit`, and a Link after the last
 * of them (carrying the client's n, if it gave one).
 */
export function pageOfAllowed(allowed: readonly string[], limit: number, n: number | null, upstreamHasMore: boolean): FilteredAnswer {
  const repositories = allowed.slice(0, limit);
  const more = allowed.length > limit || upstreamHasMore;
  if (!more || repositories.length === 0) return { repositories, next: null };
  const last = encodeURIComponent(repositories[repositories.length - 1]!);
  return { repositories, next: `/v2/_catalog?last=${last}${n === null ? '' : `&n=${n}`}` };
}

function fetchPage(req: http.IncomingMessage, signal: AbortSignal, state: ForwardState, settings: ForwardSettings, target: string): Promise<UpstreamPage> {
  const { upstream } = settings;
  const headers = buildUpstreamRequestHeaders(req.rawHeaders, { clientAddress: state.remoteAddress, host: settings.forwardedHost });
  // We read the body ourselves: it must come as plain JSON.
  headers['accept-encoding'] = 'identity';
  return new Promise((resolve, reject) => {
    const upstreamReq = http.request({ ...upstreamRequestOptions(upstream, 'GET', target, headers), signal }, (upstreamRes) => {
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
  const target = req.url ?? '/v2/_catalog';
  const n = pageSize(target.includes('?') ? target.slice(target.indexOf('?') + 1) : '');
  const allowed: string[] = [];
  // Without n, pages are as long as the registry's own first one (its default page size).
  let limit = n ?? MAX_ANSWER_NAMES;
  let next: string | null = target;
  // A client that goes away stops the walk.
  const gone = new AbortController();
  res.once('close', () => gone.abort());
  try {
    while (next !== null && allowed.length < limit) {
      const page = await fetchPage(req, gone.signal, state, settings, next);
      state.upstreamStatus = page.status;
      if (page.status !== 200) return relayAsIs(req, res, state, settings, page);
      const parsed = parseCatalogPage(page.body, headerValues(page.rawHeaders, 'link'));
      if (parsed === null) throw new Error('the upstream answered the catalog with something other than a catalog');
      if (n === null && next === target && parsed.next !== null) limit = Math.max(1, parsed.repositories.length);
      for (const repository of parsed.repositories) if (mayPull(repository)) allowed.push(repository);
      // A registry whose next page is the page it just sent would keep us here for ever.
      next = parsed.next === next ? null : parsed.next;
    }
  } catch (err) {
    if (res.destroyed) return;
    fail(req, res, state, settings, err);
    return;
  }
  const answer = pageOfAllowed(allowed, limit, n, next !== null);
  const body = JSON.stringify({ repositories: answer.repositories });
  const headers: http.OutgoingHttpHeaders = { [API_VERSION_HEADER]: API_VERSION };
  if (answer.next !== null) headers.link = `<${settings.rewrite.publicOrigin ?? ''}${answer.next}>; rel="next"`;
  if (req.method === 'HEAD') {
    for (const [name, value] of Object.entries({ ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })) res.setHeader(name, value);
    res.writeHead(200);
    res.end();
    return;
  }
  state.bytesOut = Buffer.byteLength(body);
  sendJson(res, 200, body, headers);
}

function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!);
  return values;
}

function relayAsIs(req: http.IncomingMessage, res: http.ServerResponse, state: ForwardState, settings: ForwardSettings, page: UpstreamPage): void {
  const headers = buildClientResponseHeaders(page.rawHeaders, { ...settings.rewrite, status: page.status, realm: settings.realm, registryApi: true });
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
  const failure = describeUpstreamFailure(err);
  const known = failure.status !== 502 || failure.reason.startsWith('HPE_') || (err as NodeJS.ErrnoException)?.code !== undefined;
  const message = known ? failure.message : 'upstream registry sent an unusable response';
  state.failure = known ? failure.reason : `unusable catalog: ${(err as Error).message}`;
  settings.log.error({ upstream: settings.upstream.origin, reason: state.failure, path: '/v2/_catalog' }, message);
  sendRegistryError(res, failure.status === 408 ? 502 : failure.status, 'UNAVAILABLE', message, declaresBody(req) ? { connection: 'close' } : {});
}
