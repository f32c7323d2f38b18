// Reading htpasswd files the way Apache's mod_authn_file and distribution's registry/auth/htpasswd
// do: each line is trimmed as a whole, '#' starts a comment, and the user name ends at the first ':'.
// Unlike them, every line we cannot use is reported, so a typo never silently locks a user out.

import { readFile } from 'node:fs/promises';
import { MAX_USER_BYTES } from './basic.js';
import { identifyHash } from './hashes.js';
import type { HtpasswdProblem, PasswordHash } from './types.js';

export interface ParsedHtpasswd {
  users: Map<string, PasswordHash>;
  problems: HtpasswdProblem[];
}

/** Apache trims with C isspace(): only ASCII whitespace, not the wider Unicode set of String#trim. */
const EDGE_SPACE = /^[ \t\v\f\r]+|[ \t\v\f\r]+$/g;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export function parseHtpasswd(text: string, file: string): ParsedHtpasswd {
  const users = new Map<string, PasswordHash>();
  const problems: HtpasswdProblem[] = [];
  const firstLine = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    const t = raw.replace(EDGE_SPACE, '');
    if (t === '' || t.startsWith('#')) return;
    const entry = parseLine(t);
    if ('reason' in entry) {
      problems.push({ file, line, user: entry.user, reason: entry.reason });
      return;
    }
    const first = firstLine.get(entry.user);
    if (first !== undefined) {
      problems.push({ file, line, user: entry.user, reason: duplicateReason(first, line) });
      return;
    }
    firstLine.set(entry.user, line);
    users.set(entry.user, entry.hash);
  });
  return { users, problems };
}

function parseLine(t: string): { user: string; hash: PasswordHash } | { user: string | null; reason: string } {
  const colon = t.indexOf(':');
  if (colon < 0) return { user: null, reason: 'the line has no ":" between a user name and a password hash' };
  const user = t.slice(0, colon);
  const hash = t.slice(colon + 1);
  if (user === '') return { user: null, reason: 'the user name before ":" is empty' };
  const userBytes = Buffer.byteLength(user);
  if (userBytes > MAX_USER_BYTES) {
    return { user: null, reason: `the user name is ${userBytes} bytes long; the gateway refuses names over ${MAX_USER_BYTES} bytes before any check, so it could never log in; shorten it` };
  }
  if (/\s$/.test(user)) {
    return { user, reason: 'the user name ends with whitespace, which would be part of the name; remove it' };
  }
  if (CONTROL.test(user)) return { user, reason: 'the user name contains control characters, so no client could send it' };
  if (hash === '') return { user, reason: 'there is no password hash after ":"' };
  const identified = identifyHash(hash);
  if ('error' in identified) return { user, reason: identified.error };
  return { user, hash: identified };
}

function duplicateReason(first: number, line: number): string {
  return `the user is defined twice, on lines ${first} and ${line} (Apache uses the first entry, distribution the last); remove one`;
}

/** One line for logs and error output: `file:line: user "name": reason`. */
export function formatHtpasswdProblem(p: HtpasswdProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}` : p.file;
  const who = p.user === null ? '' : ` user ${JSON.stringify(p.user)}:`;
  return `${where}:${who} ${p.reason}`;
}

/** Reads and parses a file; a missing or unreadable file becomes a single problem on line 0. */
export async function readHtpasswdFile(file: string): Promise<ParsedHtpasswd> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return { users: new Map(), problems: [{ file, line: 0, user: null, reason: unreadableReason(err, file) }] };
  }
  const { text, badLines } = decodeLines(bytes);
  const parsed = parseHtpasswd(text, file);
  for (const line of badLines) {
    parsed.problems.push({
      file,
      line,
      user: null,
      reason: 'the line is not valid UTF-8 (was the file saved as Latin-1?); save the file as UTF-8',
    });
  }
  parsed.problems.sort((a, b) => a.line - b.line);
  return parsed;
}

/** A path as one shell word: quoted when it holds anything but the usual file-name characters. */
function shellWord(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
}

/**
 * How to add a user to `file` (which it creates when missing), with the project's own command;
 * and the same under docker compose, where the gateway's service edits its mounted file.
 */
export function addUserHint(file: string): string {
  return `\`registry-gateway htpasswd add <user> --file ${shellWord(file)}\` (under docker compose: \`docker compose run --rm gateway htpasswd add <user>\`)`;
}

function unreadableReason(err: unknown, file: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return `the htpasswd file does not exist; create it with ${addUserHint(file)}, or fix the path`;
    case 'EACCES':
    case 'EPERM':
      return 'the htpasswd file cannot be read (permission denied); make it readable by the user the gateway runs as';
    case 'EISDIR':
      return 'the htpasswd path is a directory; point it at the file itself';
    default:
      return `the htpasswd file cannot be read (${code ?? String(err)}); check the path and permissions`;
  }
}

/**
 * Decodes the file line by line so that a line that is not UTF-8 (say, a Latin-1 user name that no
 * client could ever match) is reported and dropped instead of silently becoming U+FFFD.
 */
function decodeLines(bytes: Buffer): { text: string; badLines: number[] } {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return { text: strict.decode(bytes), badLines: [] };
  } catch {
    const badLines: number[] = [];
    const lines = splitBytes(bytes).map((chunk, index) => {
      try {
        return strict.decode(chunk);
      } catch {
        badLines.push(index + 1);
        return '';
      }
    });
    return { text: lines.join('\n'), badLines };
  }
}

function splitBytes(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (let nl = bytes.indexOf(0x0a); nl >= 0; nl = bytes.indexOf(0x0a, start)) {
    chunks.push(bytes.subarray(start, nl));
    start = nl + 1;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}
