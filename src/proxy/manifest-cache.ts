// A short-lived copy of the manifests the registry has just served. Every pull starts with
// manifest requests, and a fleet pulling one image (a CI farm, a rollout) asks for the same few
// at once: with the copy the registry answers each repository and reference once per TTL, not
// once per client. Only manifests are kept (small, capped in size and count), never blobs.
//
// Consistency: a push or delete through the gateway drops the repository's copies before it is
// forwarded and again when the registry has answered it, in every process of the gateway (the
// client hears the answer only once every process has), and a GET that overlapped it does not
// store what it got; so a pull after a push through the gateway sees the push. A change made
// behind the gateway's back (a push straight to the registry, another gateway, garbage
// collection) shows once the copy expires: after the TTL at most.
//
// Keys: what the registry answers depends on the headers it is sent, not on those the client
// sent, so a key is made from the very header set the request is forwarded with.

import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import { routeOf, type Routed } from '../registry/context.js';
import { namesEndToEnd } from './hop-by-hop.js';

export interface ManifestKey {
  readonly repository: string;
  /** Repository, reference and the Accept lines forwarded: what the registry's answer depends on. */
  readonly key: string;
}

export interface CachedManifest {
  /** The headers the client was sent (Date left out: each answer gets its own). */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
}

/** Taken when a GET starts; a change to the repository since then voids it. */
export interface Ticket {
  readonly repository: string;
  readonly epoch: number;
  readonly generation: number;
}

export interface ManifestCache {
  lookup(key: ManifestKey): CachedManifest | undefined;
  ticket(repository: string): Ticket;
  /** Keeps the answer unless the repository changed since the ticket was taken; false when not kept. */
  store(ticket: Ticket, key: ManifestKey, answer: CachedManifest): boolean;
  /**
   * A change through this process: drops the repository's copies and tells the other processes.
   * `dropped`, when given, runs once every process has dropped them (or some were given up on
   * after a bounded wait); at once, before changed() returns, when there are no other processes.
   */
  changed(repository: string, dropped?: () => void): void;
  /** A change another process saw: drops the repository's copies. */
  drop(repository: string): void;
  readonly size: number;
}

export interface ManifestCacheOptions {
  readonly ttlMs: number;
  /** Largest manifest kept (the registry accepts up to 4 MiB; most are a few KiB). */
  readonly maxEntryBytes?: number;
  readonly maxBytes?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
  /**
   * Called on changed(), for the other processes of a --workers gateway; must call `dropped`,
   * when given, once they have all dropped the repository's copies or been given up on.
   */
  readonly onChange?: (repository: string, dropped?: () => void) => void;
}

interface Entry {
  readonly repository: string;
  readonly answer: CachedManifest;
  readonly expiresAt: number;
}

export const MAX_ENTRY_BYTES = 256 * 1024;
const MAX_BYTES = 16 * 1024 * 1024;
const MAX_ENTRIES = 2048;
// The change counters are forgotten past this many repositories; a new epoch then voids every
// ticket taken before, so no GET that overlapped a forgotten change can store.
const MAX_TRACKED_REPOSITORIES = 10_000;

export function createManifestCache(options: ManifestCacheOptions): ManifestCache {
  const now = options.now ?? Date.now;
  const maxEntryBytes = options.maxEntryBytes ?? MAX_ENTRY_BYTES;
  const maxBytes = options.maxBytes ?? MAX_BYTES;
  const maxEntries = options.maxEntries ?? MAX_ENTRIES;
  // Insertion order is age: the first entry is the one to evict.
  const entries = new Map<string, Entry>();
  const keysOf = new Map<string, Set<string>>();
  const generations = new Map<string, number>();
  let epoch = 0;
  let counter = 0;
  let bytes = 0;

  const remove = (key: string): void => {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    bytes -= entry.answer.body.length;
    const keys = keysOf.get(entry.repository);
    keys?.delete(key);
    if (keys?.size === 0) keysOf.delete(entry.repository);
  };
  const drop = (repository: string): void => {
    if (generations.size >= MAX_TRACKED_REPOSITORIES && !generations.has(repository)) {
      generations.clear();
      epoch++;
    }
    generations.set(repository, ++counter);
    for (const key of keysOf.get(repository) ?? []) remove(key);
  };

  return {
    lookup(key) {
      const entry = entries.get(key.key);
      if (!entry) return undefined;
      if (entry.expiresAt > now()) return entry.answer;
      remove(key.key);
      return undefined;
    },
    ticket(repository) {
      return { repository, epoch, generation: generations.get(repository) ?? 0 };
    },
    store(ticket, key, answer) {
      if (ticket.epoch !== epoch || ticket.generation !== (generations.get(key.repository) ?? 0) || ticket.repository !== key.repository) return false;
      if (answer.body.length > maxEntryBytes) return false;
      remove(key.key);
      entries.set(key.key, { repository: key.repository, answer, expiresAt: now() + options.ttlMs });
      bytes += answer.body.length;
      let keys = keysOf.get(key.repository);
      if (!keys) keysOf.set(key.repository, (keys = new Set()));
      keys.add(key.key);
      while (entries.size > maxEntries || bytes > maxBytes) remove(entries.keys().next().value!);
      return true;
    },
    changed(repository, dropped) {
      drop(repository);
      if (options.onChange) options.onChange(repository, dropped);
      else dropped?.();
    },
    drop,
    get size() {
      return entries.size;
    },
  };
}

// Headers that ask for something other than the current whole manifest, or for a fresh one.
const UNCACHEABLE_REQUEST_HEADERS = ['range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'cache-control', 'pragma'];

/**
 * The key of a GET or HEAD of a manifest the cache may answer; null for anything else. `upstream`
 * is the header set the request is forwarded with (what the registry's answer depends on), and
 * `connection` the names the client's Connection headers list.
 */
export function manifestRequestKey(request: Routed, upstream: OutgoingHttpHeaders, connection: ReadonlySet<string>): ManifestKey | null {
  if ((request.method !== 'GET' && request.method !== 'HEAD') || request.query !== null) return null;
  // `Connection: accept` has the gateway drop the Accept it names: the registry then answers
  // another question (schema 1 for a schema-2 tag) than the same request without it. Such
  // requests are rare and never sent by registry clients; they neither use nor fill the cache.
  if (namesEndToEnd(connection)) return null;
  for (const name of UNCACHEABLE_REQUEST_HEADERS) if (upstream[name] !== undefined) return null;
  if (upstream['content-length'] !== undefined && upstream['content-length'] !== '0') return null;
  if (upstream['transfer-encoding'] !== undefined) return null;
  const access = routeOf(request);
  if (access.kind !== 'repository' || access.route !== 'manifest') return null;
  return { repository: access.repository, key: `${access.repository}\n${access.reference}${headerLines(upstream.accept)}` };
}

/**
 * Each line of a header as it goes upstream, one `\n` before each: none when there is no such
 * header, and `Accept: a` + `Accept: b` apart from `Accept: a, b`. Header values hold no LF
 * (Node's parser refuses them), so no two different sets of lines give the same text.
 */
function headerLines(value: OutgoingHttpHeader | undefined): string {
  if (value === undefined) return '';
  if (!Array.isArray(value)) return `\n${value}`;
  let lines = '';
  for (const line of value) lines += `\n${line}`;
  return lines;
}

/** The repository whose manifests a request may change: anything but a GET or HEAD on one of its routes. */
export function changedRepository(request: Routed): string | null {
  if (request.method === 'GET' || request.method === 'HEAD') return null;
  const access = routeOf(request);
  return access.kind === 'repository' ? access.repository : null;
}

/** The client headers of an answer worth keeping (a whole 200 with its length), without Date; null otherwise. */
export function cacheableHeaders(status: number, headers: OutgoingHttpHeaders): OutgoingHttpHeaders | null {
  if (status !== 200 || headers['content-length'] === undefined || headers['set-cookie'] !== undefined) return null;
  const { date: _date, ...kept } = headers;
  return kept;
}
