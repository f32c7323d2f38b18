// Keeps the access policy in step with its file, like the htpasswd file: an edit takes effect
// within a couple of seconds, and a broken file keeps the last good policy in force and says
// which line is at fault.

import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { formatAccessProblem, readAccessFile, type AccessPolicy, type ParsedAccess } from './policy.js';

// Polling, not fs.watch: it survives the file being replaced by rename, and editors' tricks.
const POLL_INTERVAL_MS = 1000;
// A file caught half-written would refuse too much, or grant too much: a read counts only when
// the file did not change around it.
const SETTLE_MS = 100;
const SETTLE_TRIES = 20;

const fingerprint = (s: Stats) => `${s.ino}:${s.size}:${s.mtimeMs}`;

async function readSettled(file: string): Promise<ParsedAccess> {
  for (let i = 0; ; i++) {
    const before = await stat(file).then(fingerprint, () => null);
    const parsed = await readAccessFile(file);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const after = await stat(file).then(fingerprint, () => null);
    if (before === after || i === SETTLE_TRIES) return parsed;
  }
}

export interface AccessControl {
  /** The policy in force. */
  policy(): AccessPolicy;
  /** Re-read the file now (also what the poller does on a change); false when it was refused. */
  reload(): Promise<boolean>;
  close(): void;
}

export function watchAccess(file: string, initial: AccessPolicy, log: Logger): AccessControl {
  let current = initial;
  let reloading = Promise.resolve(true);

  const reloadOnce = async (): Promise<boolean> => {
    const parsed = await readSettled(file);
    if (parsed.policy === null) {
      log.error({ access: file, problems: parsed.problems.map(formatAccessProblem) }, 'access file not reloaded: keeping the previous policy');
      return false;
    }
    current = parsed.policy;
    log.info({ access: file, rules: current.rules.length }, 'access file reloaded');
    return true;
  };
  // Serialise reloads so an older read never overwrites a newer one.
  const reload = (): Promise<boolean> => (reloading = reloading.then(reloadOnce, reloadOnce));

  const onChange = (now: Stats, before: Stats) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) void reload();
  };
  watchFile(file, { interval: POLL_INTERVAL_MS, persistent: false }, onChange);
  return { policy: () => current, reload, close: () => unwatchFile(file, onChange) };
}
