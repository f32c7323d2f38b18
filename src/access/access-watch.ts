// Keeps the access policy in step with its file, like the htpasswd file: an edit takes effect
// within a couple of seconds, and a broken file keeps the last good policy in force and says
// which line is at fault.

import type { Logger } from 'pino';
import { watchFiles } from '../config/watch.js';
import { namesAnonymous } from './decide.js';
import { formatAccessProblem, readAccessFile, type AccessPolicy, type ParsedAccess } from './policy.js';

// A file caught half-written would refuse too much, or grant too much: a read counts only when
// the file did not change around it.
const SETTLE_MS = 100;

export interface AccessControl {
  /** The policy in force. */
  policy(): AccessPolicy;
  /** Re-read the file now (also what the poller does on a change); false when it was refused. */
  reload(): Promise<boolean>;
  close(): void;
}

/** `anonymous`: whether rules for @anonymous mean anything (token mode); elsewhere a file with them is refused, as at start. */
export function watchAccess(file: string, initial: AccessPolicy, log: Logger, options: { readonly anonymous: boolean } = { anonymous: false }): AccessControl {
  let current = initial;

  const take = (parsed: ParsedAccess): boolean => {
    if (parsed.policy === null) {
      log.error({ access: file, problems: parsed.problems.map(formatAccessProblem) }, 'access file not reloaded: keeping the previous policy');
      return false;
    }
    if (!options.anonymous && namesAnonymous(parsed.policy)) {
      log.error({ access: file }, 'access file not reloaded: it has rules for @anonymous, which only --auth token has; keeping the previous policy');
      return false;
    }
    current = parsed.policy;
    log.info({ access: file, rules: current.rules.length }, 'access file reloaded');
    return true;
  };

  const watch = watchFiles({ files: [file], read: () => readAccessFile(file), take, settleMs: SETTLE_MS });
  return { policy: () => current, reload: watch.reload, close: watch.close };
}
