// Where a filtered catalog page stopped, when that is a name the user may not see. The gateway
// reads a bounded number of registry pages per request; when the bound is reached before the
// user's page is full, the next page must start after the last name read, which is usually a
// hidden one. Its `last` then carries that name encrypted (AES-256-GCM), padded to one length so
// not even the name's length shows. The key is random per gateway run and shared by its worker
// processes (a page can be asked of any of them): the first process puts it in its environment
// before it forks the others, which inherit it. A cursor from an earlier run no longer opens, and
// the client is told to list again from the start.

import cluster from 'node:cluster';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Starts every cursor; no repository name has it, so a cursor is never taken for a name. */
export const CURSOR_PREFIX = '~';
const KEY_VARIABLE = 'REGISTRY_GATEWAY_CATALOG_CURSOR_KEY';
const IV_BYTES = 12;
const TAG_BYTES = 16;
// The registry's names have at most 255 characters; padding to 256 bytes hides which.
const PADDED_BYTES = 256;

function sharedKey(): Buffer {
  // Taken only from the primary that forked this worker: a key set from outside is never used.
  const inherited = cluster.isWorker ? process.env[KEY_VARIABLE] : undefined;
  if (inherited !== undefined && /^[0-9a-f]{64}$/.test(inherited)) return Buffer.from(inherited, 'hex');
  const key = randomBytes(32);
  // Only the first process hands it on; a worker without it (never expected) keeps its own.
  if (cluster.isPrimary) process.env[KEY_VARIABLE] = key.toString('hex');
  return key;
}

const KEY = sharedKey();

/** A `last` that continues after `name` without showing it. */
export function sealCursor(name: string): string {
  const plain = Buffer.from(name, 'utf8');
  const padded = Buffer.alloc(Math.max(PADDED_BYTES, Math.ceil(plain.length / PADDED_BYTES) * PADDED_BYTES));
  plain.copy(padded);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', KEY, iv);
  const sealed = Buffer.concat([cipher.update(padded), cipher.final()]);
  return CURSOR_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url');
}

export function isCursor(last: string): boolean {
  return last.startsWith(CURSOR_PREFIX);
}

/** The name a cursor continues after, or null when it is not one this gateway run sealed. */
export function openCursor(cursor: string): string | null {
  if (!isCursor(cursor)) return null;
  const raw = Buffer.from(cursor.slice(CURSOR_PREFIX.length), 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES + PADDED_BYTES) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', KEY, raw.subarray(0, IV_BYTES));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    const padded = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    const end = padded.indexOf(0);
    return padded.subarray(0, end === -1 ? padded.length : end).toString('utf8');
  } catch {
    return null;
  }
}
