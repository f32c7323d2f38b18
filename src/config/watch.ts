// Following a file the gateway keeps using while it runs (htpasswd, access file, certificate and
// key): one mechanism, each owner deciding what the contents mean.
//
// - Polling, not fs.watch: it survives the file being replaced by rename, and editors' tricks.
//   Our own poll rather than fs.watchFile: its first look is taken later, asynchronously, so a
//   change made right after the watch starts could become the baseline and never be seen. Ours
//   takes the baseline synchronously, when the watch starts.
// - Settling: a read counts only when the files did not change around it (`settleMs`), or waits
//   for more changes first (`debounceMs`: tools writing a certificate and then its key).
// - Reloads run one at a time, so an older read never overwrites a newer one.
// - The owner takes what was read, or refuses it: then the last good state stays in force and the
//   owner logs the line at fault.

import { statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';

const POLL_INTERVAL_MS = 1000;
/** Reads before a file that never holds still is taken as it is. */
const SETTLE_TRIES = 20;

export interface FileWatchOptions<T> {
  /** The files whose change means a reload. */
  readonly files: readonly string[];
  /** Reads and checks the files. */
  read(): Promise<T>;
  /**
   * Takes what was read into use (true), or keeps the last good state and logs why (false).
   * `stamp` is the files' identity as read (inode, size, mtime), null when none of them exists.
   */
  take(read: T, stamp: string | null): boolean;
  /** A read counts only when the files did not change from before it until this long after it; retried up to 20 times. */
  readonly settleMs?: number;
  /** After a change, wait this long for more before reading; 0 (the default): at once. */
  readonly debounceMs?: number;
}

export interface FileWatch {
  /** Read and take the files now, after any reload already running; what `take` said. */
  reload(): Promise<boolean>;
  close(): void;
}

const fingerprint = (s: Stats) => `${s.ino}:${s.size}:${s.mtimeMs}`;

const joinPrints = (prints: ReadonlyArray<string | null>): string | null =>
  prints.every((p) => p === null) ? null : prints.map((p) => p ?? '-').join(' ');

/** The files' identity now; null when none exists. */
async function stampOf(files: readonly string[]): Promise<string | null> {
  return joinPrints(await Promise.all(files.map((file) => stat(file).then(fingerprint, () => null))));
}

function stampOfSync(files: readonly string[]): string | null {
  return joinPrints(files.map((file) => {
    try {
      return fingerprint(statSync(file));
    } catch {
      return null;
    }
  }));
}

/** Reads once the files hold still: unchanged from before the read until settleMs after it. */
async function readSettled<T>(files: readonly string[], read: () => Promise<T>, settleMs: number): Promise<{ read: T; stamp: string | null }> {
  for (let i = 0; ; i++) {
    const before = await stampOf(files);
    const result = await read();
    await new Promise((r) => setTimeout(r, settleMs));
    const after = await stampOf(files);
    if (before === after || i === SETTLE_TRIES) return { read: result, stamp: after };
  }
}

export function watchFiles<T>(options: FileWatchOptions<T>): FileWatch {
  const { files, settleMs, debounceMs = 0 } = options;
  let reloading = Promise.resolve(true);
  let pending: NodeJS.Timeout | null = null;

  const reloadOnce = async (): Promise<boolean> => {
    const { read, stamp } =
      settleMs === undefined ? { read: await options.read(), stamp: await stampOf(files) } : await readSettled(files, options.read, settleMs);
    return options.take(read, stamp);
  };
  const reload = (): Promise<boolean> => (reloading = reloading.then(reloadOnce, reloadOnce));

  const onChange = () => {
    if (debounceMs === 0) {
      void reload();
      return;
    }
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => {
      pending = null;
      void reload();
    }, debounceMs);
    pending.unref();
  };

  let seen = stampOfSync(files);
  let looking = false;
  const poll = setInterval(() => {
    if (looking) return;
    looking = true;
    void stampOf(files).then((now) => {
      looking = false;
      if (now === seen) return;
      seen = now;
      onChange();
    });
  }, POLL_INTERVAL_MS);
  poll.unref();

  return {
    reload,
    close: () => {
      if (pending) clearTimeout(pending);
      clearInterval(poll);
    },
  };
}
