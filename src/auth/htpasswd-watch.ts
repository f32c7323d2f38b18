// Keeps the authenticator's users in step with the htpasswd file: an edit, or a config manager
// replacing the file, takes effect within a couple of seconds; a broken file keeps the last good
// users in force and says which line is at fault.

import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Authenticator } from './authenticator.js';
import { formatHtpasswdProblem, readHtpasswdFile } from './htpasswd.js';

// Polling, not fs.watch: it survives the file being replaced by rename, and editors' tricks.
const POLL_INTERVAL_MS = 1000;
// Apache's htpasswd rewrites the file in place (truncate, then write): a read between the two
// would see no users at all. A read counts only when the file did not change around it.
const SETTLE_MS = 100;
const SETTLE_TRIES = 20;

const fingerprint = (s: Stats) => `${s.ino}:${s.size}:${s.mtimeMs}`;

/** Reads the file once it holds still: unchanged from before the read until SETTLE_MS after it. */
async function readSettled(file: string): ReturnType<typeof readHtpasswdFile> {
  for (let i = 0; ; i++) {
    const before = await stat(file).then(fingerprint, () => null);
    const parsed = await readHtpasswdFile(file);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const after = await stat(file).then(fingerprint, () => null);
    if (before === after || i === SETTLE_TRIES) return parsed;
  }
}

export interface HtpasswdWatch {
  /** Re-read the file now (also what the poller does on a change). */
  reload(): Promise<boolean>;
  close(): void;
}

export function watchHtpasswd(file: string, authenticator: Authenticator, log: Logger): HtpasswdWatch {
  let reloading = Promise.resolve(true);

  const reloadOnce = async (): Promise<boolean> => {
    const { users, problems } = await readSettled(file);
    if (problems.length > 0) {
      log.error({ htpasswd: file, problems: problems.map(formatHtpasswdProblem) }, 'htpasswd file not reloaded: keeping the previous users');
      return false;
    }
    if (users.size === 0) {
      // Far more often a file caught half-written (or emptied by mistake) than a wish to lock
      // everyone out, which stopping the gateway does better.
      log.error({ htpasswd: file }, 'htpasswd file not reloaded: it has no users; keeping the previous users');
      return false;
    }
    authenticator.replaceUsers(users);
    log.info({ htpasswd: file, users: users.size }, 'htpasswd file reloaded');
    return true;
  };
  // Serialise reloads so an older read never overwrites a newer one.
  const reload = (): Promise<boolean> => (reloading = reloading.then(reloadOnce, reloadOnce));

  const onChange = (current: Stats, previous: Stats) => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) void reload();
  };
  watchFile(file, { interval: POLL_INTERVAL_MS, persistent: false }, onChange);
  return { reload, close: () => unwatchFile(file, onChange) };
}
