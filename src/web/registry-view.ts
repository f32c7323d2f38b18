// What the registry holds, read for the web UI straight from the upstream: repositories, tags, what
// a tag points at (digest, size, creation time, platforms), and deleting. Requests go over the
// shared keep-alive agent (proxy/upstream.ts) in plain HTTP and never carry a client's credentials:
// the UI decides who may see what (the caller's `allowed`) before anything is shown.
//
// Everything read is bounded, because the registry's answers are as untrusted as its users'
// input: each request by upstream.timeoutMs, each body by a byte limit (stop reading past it, and
// report that field as unknown), the catalog walk by a number of names, an index by the number of
// platforms looked into. Failures to reach the registry are thrown as UpstreamViewError (502/504);
// answers the UI expects (not found, a refused delete) come back as values.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { parseCatalogPage, type CatalogPage } from '../proxy/catalog.js';
import { describeUpstreamFailure, upstreamRequestOptions, upstreamTimeout, type Upstream } from '../proxy/upstream.js';
import { isRepositoryName } from '../registry/routes.js';
import type { ListPage, Platform, TagView } from './view.js';

/** A tag as the UI shows it, less what only the gateway's own record knows. */
export type TagDescription = Omit<TagView, 'pushedBy' | 'pushedAt'>;

export type DeleteResult = { readonly ok: true } | { readonly ok: false; readonly status: number; readonly message: string };

/**
 * The registry could not be read: unreachable, too slow, or answering something unusable. Not a
 * GatewayError, because errors.ts has no code for it; `status` is what the page is sent with.
 */
export class UpstreamViewError extends Error {
  readonly status: 502 | 504;
  /** For the log: what exactly went wrong (an errno code, the status the registry answered). */
  readonly detail: string;

  constructor(status: 502 | 504, message: string, options: { detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UpstreamViewError';
    this.status = status;
    this.detail = options.detail ?? message;
  }
}

// --- limits --------------------------------------------------------------------------------

/** Manifests and indexes are read whole up to this (the registry itself refuses larger puts). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** An image config holds the history and labels; a larger one is not read for its `created`. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** A catalog page of 1000 names of at most 255 characters fits well within this. */
const MAX_CATALOG_PAGE_BYTES = 4 * 1024 * 1024;
const MAX_TAGS_PAGE_BYTES = 8 * 1024 * 1024;
/** listRepositories reads at most this many names from the catalog per call. */
export const MAX_CATALOG_NAMES = 100_000;
const CATALOG_PAGE_SIZE = 1000;
/** A repository's tags beyond this are not listed (nor sorted in memory). */
export const MAX_TAGS = 100_000;
/** An index's platforms looked into for their sizes; later ones show "size unknown". */
export const MAX_INDEX_CHILDREN = 16;
const CHILD_CONCURRENCY = 4;
const RESOLVE_CONCURRENCY = 8;

// --- media types ---------------------------------------------------------------------------

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** Every kind we can describe; without it the registry would answer an index as schema 1 or 404. */
const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST].join(', ');

// --- references (the grammar of registry/routes.ts) ----------------------------------------

const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

export function isTag(reference: string): boolean {
  return TAG.test(reference);
}

export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}

function manifestPath(repository: string, reference: string): string {
  return `/v2/${repository}/manifests/${reference}`;
}

// --- one bounded request -------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The whole body, or null when it was larger than the limit (reading stopped there). */
  readonly body: Buffer | null;
}

function viewErrorOf(err: unknown): UpstreamViewError {
  const failure = describeUpstreamFailure(err);
  return new UpstreamViewError(failure.status === 504 ? 504 : 502, failure.message, { detail: failure.detail ?? failure.message, cause: err });
}

/** One request to the upstream, its body read up to `maxBody` bytes, all of it within upstream.timeoutMs. */
function exchange(upstream: Upstream, method: 'GET' | 'HEAD' | 'DELETE', path: string, accept: string | null, maxBody: number): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'user-agent': 'registry-gateway-ui' };
    if (accept !== null) headers.accept = accept;
    const req = http.request(upstreamRequestOptions(upstream, method, path, headers));
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timer = setTimeout(() => {
      settle(() => reject(viewErrorOf(upstreamTimeout(upstream))));
      req.destroy();
    }, upstream.timeoutMs);
    req.on('error', (err) => settle(() => reject(viewErrorOf(err))));
    req.on('response', (res) => {
      const answer = (body: Buffer | null): Answer => ({ status: res.statusCode ?? 0, headers: res.headers, body });
      const tooLarge = (): void => {
        // Destroyed rather than drained: the rest is never read, and the connection not reused.
        res.destroy();
        settle(() => resolve(answer(null)));
      };
      res.on('error', (err) => settle(() => reject(viewErrorOf(err))));
      res.on('aborted', () => settle(() => reject(new UpstreamViewError(502, 'upstream registry unavailable', { detail: 'the response was cut off' }))));
      const declared = Number(res.headers['content-length']);
      if (method !== 'HEAD' && Number.isFinite(declared) && declared > maxBody) return tooLarge();
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBody) return tooLarge();
        chunks.push(chunk);
      });
      res.on('end', () => settle(() => resolve(answer(Buffer.concat(chunks)))));
    });
    req.end();
  });
}

function unexpected(answer: Answer, what: string): UpstreamViewError {
  return new UpstreamViewError(502, 'upstream registry sent an unusable response', { detail: `${what}: status ${answer.status}${errorCodes(answer)}` });
}

/** The registry's error codes in an answer, as " (CODE, CODE)", for messages and logs. */
function errorCodes(answer: Answer): string {
  const codes = registryErrorCodes(answer);
  return codes.length === 0 ? '' : ` (${codes.join(', ')})`;
}

function registryErrorCodes(answer: Answer): string[] {
  const errors = (parseJson(answer.body) as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors)) return [];
  return errors.flatMap((e) => (typeof (e as { code?: unknown })?.code === 'string' ? [(e as { code: string }).code] : []));
}

function parseJson(body: Buffer | null): unknown {
  if (body === null) return null;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

function sha256(body: Buffer): string {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

function headerDigest(answer: Answer): string | null {
  const value = answer.headers['docker-content-digest'];
  return typeof value === 'string' && isDigest(value) ? value : null;
}

// --- a bounded pool ------------------------------------------------------------------------

/** `fn` over `items`, at most `limit` at once, results in order; rejects with the first failure. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let nextIndex = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && nextIndex < items.length) {
      const index = nextIndex++;
      try {
        results[index] = await fn(items[index]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

// --- repositories --------------------------------------------------------------------------

function catalogTarget(after: string | null): string {
  const params = new URLSearchParams({ n: String(CATALOG_PAGE_SIZE) });
  if (after !== null) params.set('last', after);
  return `/v2/_catalog?${params.toString()}`;
}

/** The same catalog request without `n`, for a registry that refuses our page size. */
function withoutPageSize(target: string): string {
  const url = new URL(target, 'http://upstream.invalid');
  url.searchParams.delete('n');
  return url.pathname + url.search;
}

async function readCatalogPage(upstream: Upstream, target: string): Promise<CatalogPage | 'refuses-page-size'> {
  const answer = await exchange(upstream, 'GET', target, 'application/json', MAX_CATALOG_PAGE_BYTES);
  // A registry with a smaller catalog.maxentries refuses n=1000 with 400 PAGINATION_NUMBER_INVALID.
  if (answer.status === 400 && new URL(target, 'http://upstream.invalid').searchParams.has('n')) return 'refuses-page-size';
  if (answer.status !== 200 || answer.body === null) throw unexpected(answer, 'GET /v2/_catalog');
  const page = parseCatalogPage(answer.body, answer.headers.link);
  if (page === null) throw unexpected(answer, 'GET /v2/_catalog (not a catalog)');
  return page;
}

/**
 * A page of the repositories that are `allowed` and contain `query` (case-insensitive), after the
 * name `after` (the last one of the previous page). The registry's catalog is sorted, so the walk
 * starts right after `after` (its `last`). It reads at most MAX_CATALOG_NAMES names: when that
 * stops it with some names found, `next` continues after the last of them; with none found,
 * `next` is null, since the only way on would be a cursor naming a repository the user may not see.
 */
export async function listRepositories(
  upstream: Upstream,
  options: { allowed: (name: string) => boolean; query: string; after: string | null; limit: number },
): Promise<ListPage<string>> {
  const limit = Math.max(0, Math.floor(options.limit));
  const needle = options.query.toLowerCase();
  const after = options.after;
  // One more than the page, to know whether a next page exists.
  const found: string[] = [];
  let read = 0;
  let ended = false;
  let target = catalogTarget(after);
  walk: for (;;) {
    const page = await readCatalogPage(upstream, target);
    if (page === 'refuses-page-size') {
      target = withoutPageSize(target);
      continue;
    }
    for (const name of page.repositories) {
      read += 1;
      // Guards against a registry that ignores `last`: a name before the cursor was shown already.
      const wanted = (after === null || name > after) && isRepositoryName(name) && name.toLowerCase().includes(needle) && options.allowed(name);
      if (wanted) found.push(name);
      if (found.length > limit || read >= MAX_CATALOG_NAMES) break walk;
    }
    if (page.next === null || page.repositories.length === 0) {
      ended = true;
      break;
    }
    target = page.next;
  }
  const items = found.slice(0, limit);
  const more = found.length > limit || !ended;
  return { items, next: more && items.length > 0 ? items[items.length - 1]! : null };
}

// --- tags ----------------------------------------------------------------------------------

/** The next page of a tags list from its Link header, only if it stays on the same list. */
function nextTagsTarget(answer: Answer, listPath: string): string | null {
  for (const value of [answer.headers.link ?? []].flat()) {
    const match = /<([^>]*)>\s*;[^,]*rel="?next"?/i.exec(value);
    if (!match) continue;
    const url = new URL(match[1]!, 'http://upstream.invalid');
    if (url.pathname === listPath) return url.pathname + url.search;
  }
  return null;
}

/** Every tag of a repository, sorted and without repeats; null when the repository does not exist. */
async function allTags(upstream: Upstream, repository: string): Promise<string[] | null> {
  if (!isRepositoryName(repository)) return null;
  const listPath = `/v2/${repository}/tags/list`;
  const seen = new Set<string>();
  // Without n the registry answers the whole list (distribution 2.8 has no paging of tags; 3
  // pages only when asked); a Link is followed anyway, as long as the list stays bounded.
  let target: string | null = listPath;
  while (target !== null && seen.size < MAX_TAGS) {
    const answer = await exchange(upstream, 'GET', target, 'application/json', MAX_TAGS_PAGE_BYTES);
    if (answer.status === 404) return null;
    if (answer.status !== 200) throw unexpected(answer, `GET ${listPath}`);
    const tags = (parseJson(answer.body) as { tags?: unknown } | null)?.tags;
    if (answer.body === null || (tags !== null && !Array.isArray(tags))) throw unexpected(answer, `GET ${listPath} (not a tag list)`);
    const before = seen.size;
    for (const tag of tags ?? []) if (typeof tag === 'string' && isTag(tag) && seen.size < MAX_TAGS) seen.add(tag);
    target = seen.size === before ? null : nextTagsTarget(answer, listPath);
  }
  return [...seen].sort(compareNames);
}

/** The registry's order: byte-wise, which for these ASCII names is code-unit order. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function pageAfter(sorted: readonly string[], after: string | null, limit: number): ListPage<string> {
  const rest = after === null ? sorted : sorted.filter((name) => name > after);
  const items = rest.slice(0, Math.max(0, Math.floor(limit)));
  return { items, next: rest.length > items.length && items.length > 0 ? items[items.length - 1]! : null };
}

/** A page of a repository's tags, sorted, after the tag `after`; null when the repository does not exist. */
export async function listTags(upstream: Upstream, repository: string, options: { after: string | null; limit: number }): Promise<ListPage<string> | null> {
  const all = await allTags(upstream, repository);
  return all === null ? null : pageAfter(all, options.after, options.limit);
}

// --- describing a tag ----------------------------------------------------------------------

interface ManifestRead {
  readonly digest: string;
  readonly mediaType: string;
  /** The parsed JSON; null when it was too large or not JSON. */
  readonly document: Record<string, unknown> | null;
}

async function readManifest(upstream: Upstream, repository: string, reference: string): Promise<ManifestRead | null> {
  const answer = await exchange(upstream, 'GET', manifestPath(repository, reference), MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw unexpected(answer, `GET manifest ${reference}`);
  const digest = headerDigest(answer) ?? (answer.body === null ? null : sha256(answer.body));
  if (digest === null) throw unexpected(answer, `GET manifest ${reference} (larger than ${MAX_MANIFEST_BYTES} bytes, without a digest)`);
  const parsed = parseJson(answer.body);
  const document = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  const declared = typeof document?.mediaType === 'string' ? document.mediaType : null;
  const contentType = String(answer.headers['content-type'] ?? '').split(';')[0]!.trim();
  return { digest, mediaType: declared ?? contentType, document };
}

function isIndex(m: ManifestRead): boolean {
  return m.mediaType === OCI_INDEX || m.mediaType === DOCKER_MANIFEST_LIST || (m.mediaType !== OCI_MANIFEST && Array.isArray(m.document?.manifests));
}

function byteCount(value: unknown): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null;
}

interface ImageParts {
  readonly configDigest: string | null;
  /** Config plus layers, or null when a size is missing or malformed. */
  readonly size: number | null;
}

function imageParts(document: Record<string, unknown> | null): ImageParts {
  const config = document?.config as { digest?: unknown; size?: unknown } | undefined;
  const layers = document?.layers;
  const configDigest = typeof config?.digest === 'string' && isDigest(config.digest) ? config.digest : null;
  if (typeof config !== 'object' || config === null || !Array.isArray(layers)) return { configDigest, size: null };
  let size = byteCount(config.size);
  for (const layer of layers) {
    const layerSize = byteCount((layer as { size?: unknown } | null)?.size);
    size = size === null || layerSize === null ? null : size + layerSize;
  }
  return { configDigest, size: size !== null && Number.isSafeInteger(size) ? size : null };
}

/** A blob read on the upstream, following one redirect if it stays on the upstream's origin. */
async function readBlob(upstream: Upstream, repository: string, digest: string, maxBytes: number): Promise<Buffer | null> {
  let answer = await exchange(upstream, 'GET', `/v2/${repository}/blobs/${digest}`, null, maxBytes);
  if ([301, 302, 303, 307, 308].includes(answer.status)) {
    const location = answer.headers.location;
    if (typeof location !== 'string') return null;
    const target = new URL(location, upstream.url);
    // A storage backend elsewhere (S3, a CDN) is not the upstream we may talk to: no created then.
    if (target.origin.toLowerCase() !== upstream.origin) return null;
    answer = await exchange(upstream, 'GET', target.pathname + target.search, null, maxBytes);
  }
  return answer.status === 200 ? answer.body : null;
}

/** The image config's `created`, or null when missing, unreadable or not a time. */
async function configCreated(upstream: Upstream, repository: string, configDigest: string | null): Promise<string | null> {
  if (configDigest === null) return null;
  try {
    const created = (parseJson(await readBlob(upstream, repository, configDigest, MAX_CONFIG_BYTES)) as { created?: unknown } | null)?.created;
    return typeof created === 'string' && !Number.isNaN(Date.parse(created)) ? created : null;
  } catch (err) {
    // One field of one tag: shown as unknown rather than failing the whole page.
    if (err instanceof UpstreamViewError) return null;
    throw err;
  }
}

interface IndexEntry {
  readonly digest: string | null;
  readonly os: string;
  readonly architecture: string;
  readonly variant: string | null;
}

/** The index's platforms, without attestation manifests (platform unknown/unknown). */
function indexEntries(document: Record<string, unknown> | null): IndexEntry[] {
  const manifests = document?.manifests;
  if (!Array.isArray(manifests)) return [];
  return manifests.flatMap((m): IndexEntry[] => {
    const descriptor = m as { digest?: unknown; platform?: { os?: unknown; architecture?: unknown; variant?: unknown } } | null;
    const platform = descriptor?.platform;
    if (typeof platform?.os !== 'string' || typeof platform.architecture !== 'string') return [];
    if (platform.os === 'unknown' && platform.architecture === 'unknown') return [];
    const digest = typeof descriptor?.digest === 'string' && isDigest(descriptor.digest) ? descriptor.digest : null;
    const variant = typeof platform.variant === 'string' && platform.variant !== '' ? platform.variant : null;
    return [{ digest, os: platform.os, architecture: platform.architecture, variant }];
  });
}

/** A platform's child manifest, read for its size and config; null parts when it cannot be read. */
async function childParts(upstream: Upstream, repository: string, digest: string | null): Promise<ImageParts> {
  if (digest === null) return { configDigest: null, size: null };
  try {
    const child = await readManifest(upstream, repository, digest);
    return child === null || isIndex(child) ? { configDigest: null, size: null } : imageParts(child.document);
  } catch (err) {
    if (err instanceof UpstreamViewError) return { configDigest: null, size: null };
    throw err;
  }
}

async function describeIndex(upstream: Upstream, repository: string, m: ManifestRead): Promise<Pick<TagDescription, 'size' | 'created' | 'platforms'>> {
  const entries = indexEntries(m.document);
  const looked = await mapLimited(entries.slice(0, MAX_INDEX_CHILDREN), CHILD_CONCURRENCY, (e) => childParts(upstream, repository, e.digest));
  const platforms: Platform[] = entries.map((e, i) => ({ os: e.os, architecture: e.architecture, variant: e.variant, size: looked[i]?.size ?? null }));
  const sizes = platforms.flatMap((p) => (p.size === null ? [] : [p.size]));
  const created = await configCreated(upstream, repository, looked[0]?.configDigest ?? null);
  return { size: sizes.length === 0 ? null : Math.max(...sizes), created, platforms };
}

/** What a tag points at; null when the repository or the tag does not exist. */
export async function describeTag(upstream: Upstream, repository: string, tag: string): Promise<TagDescription | null> {
  if (!isRepositoryName(repository) || !isTag(tag)) return null;
  const manifest = await readManifest(upstream, repository, tag);
  if (manifest === null) return null;
  const base = { tag, digest: manifest.digest, mediaType: manifest.mediaType };
  if (isIndex(manifest)) return { ...base, ...(await describeIndex(upstream, repository, manifest)) };
  const parts = imageParts(manifest.document);
  return { ...base, size: parts.size, created: await configCreated(upstream, repository, parts.configDigest), platforms: [] };
}

/** describeTag for each tag, at most `concurrency` at once; in order, null for a tag gone meanwhile. */
export function describeTags(upstream: Upstream, repository: string, tags: readonly string[], concurrency = 4): Promise<Array<TagDescription | null>> {
  return mapLimited(tags, concurrency, (tag) => describeTag(upstream, repository, tag));
}

// --- digests and deleting ------------------------------------------------------------------

/** The digest a tag (or digest) points at now; null when it does not exist. */
export async function resolveDigest(upstream: Upstream, repository: string, reference: string): Promise<string | null> {
  if (!isRepositoryName(repository) || !(isTag(reference) || isDigest(reference))) return null;
  const answer = await exchange(upstream, 'HEAD', manifestPath(repository, reference), MANIFEST_ACCEPT, 0);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw unexpected(answer, `HEAD manifest ${reference}`);
  // A registry that omits the header on HEAD: the body's hash is the digest.
  return headerDigest(answer) ?? (await readManifest(upstream, repository, reference))?.digest ?? null;
}

/**
 * The tags pointing at `digest` (sorted): what deleting that manifest removes. Only the first
 * `limit` tags are looked at (one HEAD each), so a repository with more may have others.
 */
export async function tagsPointingAt(upstream: Upstream, repository: string, digest: string, limit = 1000): Promise<string[]> {
  const all = await allTags(upstream, repository);
  if (all === null) return [];
  const looked = all.slice(0, Math.max(0, limit));
  const digests = await mapLimited(looked, RESOLVE_CONCURRENCY, (tag) => resolveDigest(upstream, repository, tag));
  return looked.filter((_, i) => digests[i] === digest);
}

function refusal(answer: Answer, reference: string): DeleteResult {
  const byTag = !isDigest(reference);
  if (answer.status === 404) return { ok: false, status: 404, message: byTag ? `no tag ${reference} in this repository` : `no manifest ${reference} in this repository` };
  // distribution 2.8 reads a tag as a digest it is not: 400 DIGEST_INVALID. With deleting turned
  // off it answers 405 UNSUPPORTED before looking at the reference.
  if (byTag && answer.status === 400) {
    return { ok: false, status: 405, message: 'this registry deletes manifests only by digest: it cannot delete a tag by itself; delete the manifest instead' };
  }
  if (byTag && answer.status === 405) {
    return { ok: false, status: 405, message: 'this registry deletes manifests only by digest, if at all (its storage.delete.enabled may be off): it cannot delete a tag by itself' };
  }
  if (answer.status === 405) return { ok: false, status: 405, message: 'this registry does not allow deleting (its storage.delete.enabled is off)' };
  // The registry's own auth: the gateway sends no credentials, so this upstream is not one the UI can change.
  if (answer.status === 401 || answer.status === 403) return { ok: false, status: 502, message: `the registry refused to delete (${answer.status}${errorCodes(answer)})` };
  return { ok: false, status: answer.status >= 500 ? 502 : answer.status, message: `the registry could not delete ${reference}: status ${answer.status}${errorCodes(answer)}` };
}

/** Deletes a manifest by digest, or a tag where the registry can (distribution 3; 2.8 refuses). */
export async function deleteReference(upstream: Upstream, repository: string, reference: string): Promise<DeleteResult> {
  if (!isRepositoryName(repository)) return { ok: false, status: 400, message: 'not a repository name' };
  if (!isTag(reference) && !isDigest(reference)) return { ok: false, status: 400, message: 'not a tag or a digest' };
  const answer = await exchange(upstream, 'DELETE', manifestPath(repository, reference), MANIFEST_ACCEPT, 64 * 1024);
  return answer.status === 202 || answer.status === 200 || answer.status === 204 ? { ok: true } : refusal(answer, reference);
}
