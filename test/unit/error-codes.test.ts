// The gateway's error codes stay one table each, used and documented: every registry error code it
// answers with and every internal error code is raised somewhere in src/, and docs/error-codes.md
// lists each with the same status or exit code. A code added, dropped or renamed in one place only
// fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors.js';
import { REGISTRY_ERRORS } from '../../src/registry/answers.js';
import { FAILURE_KINDS } from '../../src/registry/failure.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The whole page is the reference: its tables of answers and exit codes, and the access log's failure kinds.
const ERROR_DOC = 'docs/error-codes.md';
const ERROR_SECTION = readFileSync(join(ROOT, ERROR_DOC), 'utf8');

function sources(dir: string): Array<{ path: string; text: string }> {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|js)$/.test(entry.name) ? [{ path, text: readFileSync(path, 'utf8') }] : [];
  });
}
const SRC = sources(join(ROOT, 'src'));

/** Files of src/ other than the table's own that name the code as a string literal. */
function usesOf(code: string, table: string): string[] {
  return SRC.filter((f) => !f.path.endsWith(table) && f.text.includes(`'${code}'`)).map((f) => f.path);
}

/** The table row of a code in docs/error-codes.md: its cells after the code. */
function documented(code: string): string[] | null {
  const row = ERROR_SECTION.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
  return row === undefined ? null : row.split('|').slice(2, -1).map((cell) => cell.trim());
}

describe('error codes', () => {
  it(`${ERROR_DOC} is the error code reference`, () => {
    expect(ERROR_SECTION.startsWith('# Error codes\n')).toBe(true);
  });

  it.each(Object.entries(REGISTRY_ERRORS))('answers with %s somewhere, and documents it with its statuses', (code, { statuses }) => {
    expect(usesOf(code, join('registry', 'answers.ts')), `no file of src/ answers with ${code}`).not.toEqual([]);
    expect(documented(code)?.[0], `${ERROR_DOC} has no row for ${code}`).toBe(statuses.join(', '));
  });

  it.each(Object.entries(ERRORS))('raises %s somewhere, and documents it with its exit code', (code, { exitCode }) => {
    expect(usesOf(code, 'errors.ts'), `no file of src/ raises ${code}`).not.toEqual([]);
    expect(documented(code)?.[0], `${ERROR_DOC} has no row for ${code}`).toBe(String(exitCode));
  });

  it('names every failure kind the access log can carry', () => {
    for (const kind of FAILURE_KINDS) {
      expect(ERROR_SECTION, kind).toContain(`\`${kind}\``);
      expect(SRC.some((f) => !f.path.endsWith('failure.ts') && f.text.includes(`'${kind}'`)), `no file of src/ fails with ${kind}`).toBe(true);
    }
  });

  it('documents no code that is not in a table', () => {
    const rows = ERROR_SECTION.split('\n').flatMap((line) => /^\| `([A-Z_]+)` \|/.exec(line)?.[1] ?? []);
    expect(rows.sort()).toEqual([...Object.keys(REGISTRY_ERRORS), ...Object.keys(ERRORS)].sort());
  });
});
