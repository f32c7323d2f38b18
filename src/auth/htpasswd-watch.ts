// Keeps the authenticator's users in step with the htpasswd file: an edit, or a config manager
// replacing the file, takes effect within a couple of seconds; a broken file keeps the last good
// users in force and says which line is at fault. A file emptied or deleted is taken at its word
// once it stays so for EMPTY_SETTLE_MS: nobody is let in any more (revoking everyone must not
// fail open), while a file caught for a moment between truncation and rewrite changes nothing.

import type { Logger } from 'pino';
import { watchFiles } from '../config/watch.js';
import type { Authenticator } from './authenticator.js';
import { formatHtpasswdProblem, readHtpasswdFile, type ParsedHtpasswd } from './htpasswd.js';

// Apache's htpasswd rewrites the file in place (truncate, then write): a read between the two
// would see no users at all. A read counts only when the file did not change around it.
const SETTLE_MS = 100;
/** How long the file must stay empty or missing before no user is let in. */
export const EMPTY_SETTLE_MS = 5_000;

export interface HtpasswdWatch {
  /** Re-read the file now (also what the poller does on a change). */
  reload(): Promise<boolean>;
  close(): void;
}

export function watchHtpasswd(file: string, authenticator: Authenticator, log: Logger): HtpasswdWatch {
  /** Since when the file has been empty or missing, as it is now; null while it has users. */
  let emptySince: { print: string | null; at: number; applied: boolean } | null = null;
  let recheck: NodeJS.Timeout | null = null;

  const take = ({ users, problems }: ParsedHtpasswd, print: string | null): boolean => {
    // Missing (no stat) or without a single user and without a broken line: emptied on purpose,
    // or caught half-written.
    if (users.size === 0 && (print === null || problems.length === 0)) return whenEmpty(print);
    emptySince = null;
    if (problems.length > 0) {
      log.error({ htpasswd: file, problems: problems.map(formatHtpasswdProblem) }, 'htpasswd file not reloaded: keeping the previous users');
      return false;
    }
    authenticator.replaceUsers(users);
    log.info({ htpasswd: file, users: users.size }, 'htpasswd file reloaded');
    return true;
  };

  const whenEmpty = (print: string | null): boolean => {
    const at = Date.now();
    if (emptySince === null || emptySince.print !== print) emptySince = { print, at, applied: false };
    if (emptySince.applied) return true;
    const state = print === null ? 'missing' : 'empty';
    const left = emptySince.at + EMPTY_SETTLE_MS - at;
    if (left > 0) {
      log.warn({ htpasswd: file }, `htpasswd file is ${state}: keeping the previous users unless it stays ${state} for ${EMPTY_SETTLE_MS / 1000} s`);
      if (recheck !== null) clearTimeout(recheck);
      recheck = setTimeout(() => void watch.reload(), left).unref();
      return false;
    }
    emptySince.applied = true;
    authenticator.replaceUsers(new Map());
    log.error({ htpasswd: file }, `htpasswd file is ${state}: no user can log in until it has users again`);
    return true;
  };

  const watch = watchFiles({ files: [file], read: () => readHtpasswdFile(file), take, settleMs: SETTLE_MS });
  return {
    reload: watch.reload,
    close: () => {
      if (recheck !== null) clearTimeout(recheck);
      watch.close();
    },
  };
}
