// The gateway's record of events: an append-only file of JSON lines, one event a line, owned by one
// process (the caller sees to that), with the newest events also kept in memory for the web UI
// and the API to read.
//
// - Embedded, without a native module: the tests run one node_modules on two Node versions, and
//   node:sqlite is not in Node 20. A line-per-event file is enough for what is asked of it:
//   the newest events, and who pushed a tag last.
// - Bounded: at most maxEvents in memory, none older than maxAgeMs; the file is rewritten from
//   memory (a temporary file, fsync, rename) once it holds more than twice as many lines, or at
//   open when it held lines that were not kept.
// - A crash can tear the last line: at open, lines that are not events are skipped (one warning),
//   and the rewrite drops them.
// - Appends are written in order, one write at a time, queued ones batched into one write.
//   A write that fails (disk full, permissions) is logged and its appends reject; the events stay
//   in memory, and the next rewrite puts them in the file.
// - The file names users and client addresses: it is 0600, its folder 0700 when we make it.

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from 'pino';
import { EVENT_ACTIONS, type EventAction, type GatewayEvent } from './event.js';

export interface EventStoreOptions {
  readonly file: string;
  readonly maxEvents: number;
  readonly maxAgeMs: number;
  readonly log: Logger;
  /** The clock events are aged by; Date.now unless a test says otherwise. */
  readonly now?: () => number;
}

export interface EventQuery {
  readonly repository?: string;
  readonly action?: EventAction;
  readonly user?: string;
  /** Default 100, at most 1000. */
  readonly limit?: number;
  /** An event id: only events older than it. An id no longer kept gives none. */
  readonly before?: string;
}

export interface EventStore {
  /** Appends; resolves once the line is written to the file (appends are written in order, one write at a time, batched when many are queued). */
  append(event: GatewayEvent): Promise<void>;
  /** Newest first. */
  query(query: EventQuery): GatewayEvent[];
  /** The newest push event for this repository whose tag equals `tag` or, failing that, whose digest equals `digest`. */
  lastPush(repository: string, tag: string | null, digest: string | null): GatewayEvent | null;
  /** Counts for metrics: events kept, bytes of the file. */
  stats(): { events: number; fileBytes: number };
  /** Waits for every append already made, then stops taking new ones (they reject). */
  close(): Promise<void>;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** Lines written in one write when appends queue up behind a slow disk. */
const MAX_BATCH = 500;
/** A line longer than this is no event of ours: skipped without holding it all in memory. */
const MAX_LINE = 1024 * 1024;
/** Bytes per write when the file is rewritten. */
const REWRITE_CHUNK = 1024 * 1024;
/** While writes keep failing, the error is logged again this often. */
const ERROR_LOG_INTERVAL_MS = 60_000;

interface Entry {
  readonly event: GatewayEvent;
  /** The event's timestamp, in ms. */
  readonly at: number;
}

interface QueuedLine {
  readonly line: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export async function openEventStore(options: EventStoreOptions): Promise<EventStore> {
  const { file, log } = options;
  const maxEvents = Math.max(1, Math.floor(options.maxEvents));
  const now = options.now ?? Date.now;
  const kept = new KeptEvents();
  const trim = () => {
    const oldestKept = now() - options.maxAgeMs;
    while ((kept.oldest()?.at ?? Infinity) < oldestKept) kept.dropOldest();
    while (kept.size > maxEvents) kept.dropOldest();
  };

  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const read = await readRecord(file, (entry) => {
    kept.add(entry);
    if (kept.size > maxEvents) kept.dropOldest();
  });
  trim();
  if (read.skipped > 0) {
    log.warn({ file, skipped: read.skipped }, `event record: skipped ${read.skipped} line(s) that are not events (a line torn by a crash is expected); the others are kept`);
  }

  const writer = new RecordWriter(file, log, kept, maxEvents, read);
  if (read.lines > kept.size || !read.endsWithNewline) await writer.rewriteNow();
  await writer.openForAppend();

  let closing: Promise<void> | null = null;
  return {
    append(event) {
      try {
        if (closing !== null) return Promise.reject(new Error(`the event record ${file} is closed`));
        const line = `${JSON.stringify(event)}\n`;
        kept.add(entryOf(event, now()));
        trim();
        return writer.write(line);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    query(query) {
      trim();
      return kept.query(query);
    },
    lastPush(repository, tag, digest) {
      trim();
      return kept.lastPush(repository, tag, digest);
    },
    stats() {
      trim();
      return { events: kept.size, fileBytes: writer.fileBytes };
    },
    close() {
      return (closing ??= writer.close());
    },
  };
}

/** The newest events, oldest first, with indexes by id and of the newest push per tag and digest. */
class KeptEvents {
  /** Dropped ones are cleared to undefined until the array is shortened. */
  private entries: Array<Entry | undefined> = [];
  /** Index in `entries` of the oldest kept; the ones before it were dropped. */
  private head = 0;
  /** The sequence number of entries[0]: sequence numbers survive the array being shortened. */
  private base = 0;
  private readonly sequenceOf = new Map<string, number>();
  private readonly pushByTag = new Map<string, GatewayEvent>();
  private readonly pushByDigest = new Map<string, GatewayEvent>();

  get size(): number {
    return this.entries.length - this.head;
  }

  all(): Entry[] {
    return this.entries.slice(this.head) as Entry[];
  }

  oldest(): Entry | undefined {
    return this.entries[this.head];
  }

  add(entry: Entry): void {
    const { event } = entry;
    this.sequenceOf.set(event.id, this.base + this.entries.length);
    this.entries.push(entry);
    if (event.action !== 'push' || event.repository === null) return;
    if (event.tag !== null) this.pushByTag.set(pushKey(event.repository, event.tag), event);
    if (event.digest !== null) this.pushByDigest.set(pushKey(event.repository, event.digest), event);
  }

  dropOldest(): void {
    const entry = this.entries[this.head];
    if (entry === undefined) return;
    const { event } = entry;
    if (this.sequenceOf.get(event.id) === this.base + this.head) this.sequenceOf.delete(event.id);
    // The index holds the newest push per key: when that is the oldest event, no other is left.
    if (event.repository !== null && event.tag !== null) deleteIfSame(this.pushByTag, pushKey(event.repository, event.tag), event);
    if (event.repository !== null && event.digest !== null) deleteIfSame(this.pushByDigest, pushKey(event.repository, event.digest), event);
    this.entries[this.head] = undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }

  query(query: EventQuery): GatewayEvent[] {
    const limit = limitOf(query.limit);
    let from = this.entries.length - 1;
    if (query.before !== undefined) {
      const sequence = this.sequenceOf.get(query.before);
      if (sequence === undefined) return [];
      from = sequence - this.base - 1;
    }
    const found: GatewayEvent[] = [];
    for (let i = from; i >= this.head && found.length < limit; i--) {
      const event = this.entries[i]!.event;
      if (matches(event, query)) found.push(event);
    }
    return found;
  }

  lastPush(repository: string, tag: string | null, digest: string | null): GatewayEvent | null {
    const byTag = tag === null ? undefined : this.pushByTag.get(pushKey(repository, tag));
    if (byTag !== undefined) return byTag;
    return (digest === null ? undefined : this.pushByDigest.get(pushKey(repository, digest))) ?? null;
  }
}

/**
 * Writes to the file, one write at a time: queued lines in batches, and the rewrite that bounds
 * the file when it has grown to twice what memory keeps.
 */
class RecordWriter {
  private handle: FileHandle | null = null;
  private readonly queue: QueuedLine[] = [];
  private writing: Promise<void> | null = null;
  private fileLines: number;
  fileBytes: number;
  /** The file may end inside a line (torn at a crash, or a failed write): the next write starts a new one. */
  private needsNewline: boolean;
  /** After a rewrite failed, the next is tried only once the file has grown by maxEvents more lines. */
  private nextRewriteAt = 0;
  private failedWrites = 0;
  private lastErrorLogAt = 0;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
    private readonly kept: KeptEvents,
    private readonly maxEvents: number,
    read: { lines: number; bytes: number; endsWithNewline: boolean },
  ) {
    this.fileLines = read.lines;
    this.fileBytes = read.bytes;
    this.needsNewline = !read.endsWithNewline;
  }

  async openForAppend(): Promise<void> {
    try {
      this.handle = await open(this.file, 'a', 0o600);
    } catch (err) {
      throw new Error(`cannot open the event record ${this.file} for writing: ${messageOf(err)}; give the gateway write access to it and its folder`, { cause: err });
    }
    const { mode } = await this.handle.stat();
    if ((mode & 0o077) === 0) return;
    // A file made by someone else, or by hand: it names users and addresses, so only we read it.
    await this.handle.chmod(0o600).catch((err: unknown) => this.log.warn({ file: this.file, err: messageOf(err) }, 'event record: cannot make the file private (mode 0600); do it by hand'));
  }

  write(line: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      this.startWriting();
    });
  }

  /** Writes every line already queued, then closes the file. */
  async close(): Promise<void> {
    while (this.writing !== null) await this.writing;
    await this.handle?.close().catch(() => {});
    this.handle = null;
  }

  /** Rewrites the file from memory now (at open, or when it has grown too long). */
  async rewriteNow(): Promise<void> {
    // The lines queued now are all in memory (or were dropped from it): the rewrite writes them.
    const covered = this.queue.splice(0);
    const entries = this.kept.all();
    try {
      const bytes = await rewriteFile(this.file, entries);
      await this.handle?.close().catch(() => {});
      this.handle = null; // the old handle writes to the file the rename replaced
      this.fileLines = entries.length;
      this.fileBytes = bytes;
      this.needsNewline = false;
      this.nextRewriteAt = 0;
      for (const queued of covered) queued.resolve();
    } catch (err) {
      this.log.warn({ file: this.file, err: messageOf(err) }, 'event record: cannot rewrite the file to drop old events; it keeps growing until this works (free disk space, or check the folder\'s permissions)');
      this.nextRewriteAt = this.fileLines + this.maxEvents;
      this.queue.unshift(...covered);
    }
  }

  private startWriting(): void {
    if (this.writing !== null) return;
    this.writing = this.writeAll().finally(() => {
      this.writing = null;
      // Lines queued between the loop's last look and now.
      if (this.queue.length > 0) this.startWriting();
    });
  }

  private async writeAll(): Promise<void> {
    while (this.queue.length > 0 || this.rewriteDue()) {
      if (this.rewriteDue()) await this.rewriteNow();
      else await this.writeBatch(this.queue.splice(0, MAX_BATCH));
    }
  }

  private rewriteDue(): boolean {
    return this.fileLines > 2 * this.maxEvents && this.fileLines >= this.nextRewriteAt;
  }

  private async writeBatch(batch: QueuedLine[]): Promise<void> {
    const newline = this.needsNewline ? '\n' : '';
    const text = newline + batch.map((queued) => queued.line).join('');
    try {
      this.handle ??= await open(this.file, 'a', 0o600);
      await this.handle.appendFile(text);
    } catch (err) {
      // Part of the batch may be in the file, ending inside a line.
      this.needsNewline = true;
      await this.refreshFileBytes();
      this.writeFailed(err, batch.length);
      const failure = new Error(`cannot write the event record ${this.file}: ${messageOf(err)}`, { cause: err });
      for (const queued of batch) queued.reject(failure);
      return;
    }
    this.needsNewline = false;
    this.fileLines += batch.length + (newline === '' ? 0 : 1);
    this.fileBytes += Buffer.byteLength(text);
    this.writeSucceeded();
    for (const queued of batch) queued.resolve();
  }

  private async refreshFileBytes(): Promise<void> {
    const size = await this.handle?.stat().then((s) => s.size, () => null);
    if (typeof size === 'number') this.fileBytes = size;
  }

  private writeFailed(err: unknown, lines: number): void {
    this.failedWrites += lines;
    const now = Date.now();
    if (this.failedWrites > lines && now - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLogAt = now;
    this.log.error(
      { file: this.file, err: messageOf(err), code: codeOf(err), failedAppends: this.failedWrites },
      'cannot write the event record: events are kept in memory only until it works again; free disk space, or give the gateway write access to the file and its folder',
    );
  }

  private writeSucceeded(): void {
    if (this.failedWrites === 0) return;
    this.log.info({ file: this.file, failedAppends: this.failedWrites }, 'event record written again');
    this.failedWrites = 0;
  }
}

/** Writes the entries to a temporary file beside `file`, flushed to disk, then renames it over `file`; its size. */
async function rewriteFile(file: string, entries: readonly Entry[]): Promise<number> {
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: FileHandle | null = null;
  let bytes = 0;
  try {
    handle = await open(temporary, 'wx', 0o600);
    let chunk = '';
    for (const { event } of entries) {
      chunk += `${JSON.stringify(event)}\n`;
      if (chunk.length < REWRITE_CHUNK) continue;
      await handle.appendFile(chunk);
      bytes += Buffer.byteLength(chunk);
      chunk = '';
    }
    await handle.appendFile(chunk);
    bytes += Buffer.byteLength(chunk);
    await handle.sync();
    await handle.close();
    handle = null;
    await rename(temporary, file);
  } catch (err) {
    await handle?.close().catch(() => {});
    await rm(temporary, { force: true }).catch(() => {});
    throw err;
  }
  await syncFolder(dirname(file));
  return bytes;
}

/** Makes a rename in the folder durable; not every platform can, and nothing depends on it. */
async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r').catch(() => null);
  if (handle === null) return;
  await handle.sync().catch(() => {});
  await handle.close().catch(() => {});
}

interface RecordRead {
  /** Lines in the file, events or not. */
  readonly lines: number;
  /** Lines that were not events (blank lines not counted). */
  readonly skipped: number;
  readonly bytes: number;
  /** False when the last line has no newline: torn, or the file is not ours. */
  readonly endsWithNewline: boolean;
}

/** Streams the file line by line, handing each event to `take`; a missing file reads as empty. */
async function readRecord(file: string, take: (entry: Entry) => void): Promise<RecordRead> {
  const decoder = new StringDecoder('utf8');
  let lines = 0;
  let skipped = 0;
  let bytes = 0;
  let pending = '';
  /** Inside a line too long to be an event: discarding until its end. */
  let discarding = false;
  const onLine = (line: string) => {
    lines++;
    if (line.trim() === '') return;
    const event = parseEvent(line);
    if (event === null) skipped++;
    else take(entryOf(event, Date.now()));
  };
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      pending += decoder.write(chunk);
      let start = 0;
      for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n', start)) {
        if (discarding) {
          lines++;
          skipped++;
          discarding = false;
        } else {
          onLine(pending.slice(start, end));
        }
        start = end + 1;
      }
      pending = pending.slice(start);
      if (pending.length > MAX_LINE) {
        discarding = true;
        pending = '';
      }
    }
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return { lines: 0, skipped: 0, bytes: 0, endsWithNewline: true };
    throw new Error(`cannot read the event record ${file}: ${messageOf(err)}`, { cause: err });
  }
  pending += decoder.end();
  const endsWithNewline = pending === '' && !discarding;
  if (discarding) {
    lines++;
    skipped++;
  } else if (pending !== '') {
    onLine(pending);
  }
  return { lines, skipped, bytes, endsWithNewline };
}

function entryOf(event: GatewayEvent, fallbackAt: number): Entry {
  const at = Date.parse(event.timestamp);
  return { event, at: Number.isNaN(at) ? fallbackAt : at };
}

/** A line of the file as an event, with exactly the event's fields; null when it is not one. */
export function parseEvent(line: string): GatewayEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const ok =
    typeof v.id === 'string' &&
    typeof v.timestamp === 'string' &&
    !Number.isNaN(Date.parse(v.timestamp)) &&
    EVENT_ACTIONS.includes(v.action as EventAction) &&
    stringOrNull(v.repository) &&
    stringOrNull(v.tag) &&
    stringOrNull(v.digest) &&
    stringOrNull(v.mediaType) &&
    (v.size === null || typeof v.size === 'number') &&
    stringOrNull(v.user) &&
    typeof v.address === 'string' &&
    typeof v.method === 'string' &&
    typeof v.path === 'string' &&
    typeof v.status === 'number' &&
    stringOrNull(v.reason) &&
    (v.via === 'registry' || v.via === 'ui');
  if (!ok) return null;
  const e = v as unknown as GatewayEvent;
  return {
    id: e.id,
    timestamp: e.timestamp,
    action: e.action,
    repository: e.repository,
    tag: e.tag,
    digest: e.digest,
    mediaType: e.mediaType,
    size: e.size,
    user: e.user,
    address: e.address,
    method: e.method,
    path: e.path,
    status: e.status,
    reason: e.reason,
    via: e.via,
  };
}

const stringOrNull = (value: unknown): boolean => value === null || typeof value === 'string';

function matches(event: GatewayEvent, query: EventQuery): boolean {
  return (
    (query.repository === undefined || event.repository === query.repository) &&
    (query.action === undefined || event.action === query.action) &&
    (query.user === undefined || event.user === query.user)
  );
}

function limitOf(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIMIT;
  return Math.min(MAX_LIMIT, Math.max(1, Math.floor(limit)));
}

/** Tags cannot hold a colon and digests always do, but the two are kept apart anyway. */
const pushKey = (repository: string, reference: string) => `${repository}\0${reference}`;

function deleteIfSame(index: Map<string, GatewayEvent>, key: string, event: GatewayEvent): void {
  if (index.get(key) === event) index.delete(key);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
