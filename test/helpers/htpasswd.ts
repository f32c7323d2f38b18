// htpasswd files written by Apache's own htpasswd tool (package apache2-utils).
import { chmod, readFile, rm } from 'node:fs/promises';
import { requireTool, runOk } from './tools.js';

export type HtpasswdAlgorithm = 'bcrypt' | 'apr1' | 'sha';

export interface HtpasswdUser {
  user: string;
  password: string;
  algorithm: HtpasswdAlgorithm;
  /** bcrypt cost (`-C`), 4..17; htpasswd's default (5) when left out. */
  cost?: number;
}

/**
 * Writes `file` anew (mode 0600) with one line per user, each hashed by `htpasswd -b` with the
 * user's algorithm. Returns the file's text.
 */
export async function writeHtpasswd(file: string, users: readonly HtpasswdUser[]): Promise<string> {
  const htpasswd = requireTool('htpasswd');
  await rm(file, { force: true });
  if (users.length === 0) {
    throw new Error('writeHtpasswd: give at least one user');
  }
  let first = true;
  for (const u of users) {
    const args = ['-b'];
    if (first) args.push('-c');
    switch (u.algorithm) {
      case 'bcrypt':
        args.push('-B');
        if (u.cost !== undefined) args.push('-C', String(u.cost));
        break;
      case 'apr1':
        args.push('-m');
        break;
      case 'sha':
        args.push('-s');
        break;
    }
    args.push(file, u.user, u.password);
    await runOk(htpasswd, args);
    first = false;
  }
  await chmod(file, 0o600);
  return readFile(file, 'utf8');
}
