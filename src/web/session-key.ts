// The secret that signs the web UI's session cookies (`--session-key`, default certs/session.key):
// 32 random bytes, made on the first start with the UI on (mode 0600, folder 0700), read by every
// --workers process, so a session made by one is good in all, and after a restart. Replacing the
// file ends every session.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readOptionalFile, writeNewSecretFile } from '../config/read-optional.js';

const KEY_BYTES = 32;

export interface SessionKey {
  readonly file: string;
  readonly secret: Buffer;
  /** Set when this start made the file. */
  readonly made: boolean;
}

export type OpenedSessionKey = { readonly key: SessionKey; readonly problems: readonly [] } | { readonly key: null; readonly problems: readonly string[] };

/** Reads the secret; a missing file is made (`make`), a problem (`problem`), or not looked for (`ignore`). */
export async function openSessionKey(file: string, source: string, options: { readonly missing: 'make' | 'problem' | 'ignore' }): Promise<OpenedSessionKey> {
  let text = await readOptionalFile(file);
  let made = false;
  if (text === null) {
    if (options.missing === 'ignore') return { key: null, problems: [] };
    if (options.missing === 'problem') return { key: null, problems: [`${source}: ${file} does not exist; start the gateway once to make it`] };
    text = await makeKeyFile(file);
    made = text !== null;
    // Another process made it first: use theirs.
    text ??= await readFile(file, 'utf8');
  }
  const secret = Buffer.from(text.trim(), 'base64');
  if (secret.length < KEY_BYTES || !/^[A-Za-z0-9+/]+=*$/.test(text.trim())) {
    return { key: null, problems: [`${source}: ${file} is not a session secret (${KEY_BYTES} or more random bytes in base64); remove it and the gateway makes a new one (every web UI session then ends)`] };
  }
  return { key: Object.freeze({ file, secret, made }), problems: [] };
}

/** Writes a new secret, only if no file is there yet; null when one appeared meanwhile. */
async function makeKeyFile(file: string): Promise<string | null> {
  const text = `${randomBytes(KEY_BYTES).toString('base64')}\n`;
  return (await writeNewSecretFile(file, text)) ? text : null;
}
