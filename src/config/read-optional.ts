// Reading a file that may not be there yet (a key made on first start, a certificate not issued
// yet), and making such a file once, whichever process gets there first.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The file's text, or null when it does not exist; any other failure is thrown. */
export async function readOptionalFile(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Writes a secret (a key) to a new file, mode 0600 in a folder made 0700, only if no file is there
 * yet: false when one appeared meanwhile (another process or replica made it first; use theirs).
 */
export async function writeNewSecretFile(file: string, text: string): Promise<boolean> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, text, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  return true;
}
