// Reading a file that may not be there yet (a key made on first start, a certificate not issued yet).

import { readFile } from 'node:fs/promises';

/** The file's text, or null when it does not exist; any other failure is thrown. */
export async function readOptionalFile(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
