// The layers of src/, read from the code's own imports: cli -> server -> web -> metrics -> (auth,
// access, proxy, tls, events) -> (registry, config, errors). An import goes down or stays in its folder; the
// middle layer's folders never use each other, the bottom layer's may. ARCHITECTURE.md draws the
// same picture: when this test fails, either the import or the picture is wrong.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Rank of each part: lower ranks may import higher ones. */
const LAYERS: Readonly<Record<string, number>> = {
  cli: 0,
  server: 1,
  web: 2,
  metrics: 3,
  auth: 4,
  access: 4,
  proxy: 4,
  tls: 4,
  events: 4,
  registry: 5,
  config: 5,
  errors: 5,
};
const BOTTOM = 5;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|js)$/.test(entry.name) ? [path] : [];
  });
}

/** The part a file of src/ belongs to: its first folder, or its name for a file at the top (errors.ts). */
function partOf(file: string): string {
  const [first, second] = relative(SRC, file).split(sep);
  return second === undefined ? first!.replace(/\.(ts|js)$/, '') : first!;
}

interface Import {
  readonly file: string;
  readonly line: number;
  readonly target: string;
}

/** Every relative import (static, re-export or dynamic) of a file, resolved to a path. */
function importsOf(file: string): Import[] {
  const found: Import[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((text, index) => {
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      found.push({ file, line: index + 1, target: resolve(dirname(file), m[1]!) });
    }
  });
  return found;
}

/** Why an import breaks the layers, or null when it keeps them. */
function violation(from: string, to: string): string | null {
  if (from === to) return null;
  const a = LAYERS[from];
  const b = LAYERS[to];
  if (a === undefined) return `${from}/ is not a known part; add it to the layers (test and ARCHITECTURE.md)`;
  if (b === undefined) return `${to} is not a known part; add it to the layers (test and ARCHITECTURE.md)`;
  if (b > a || (a === BOTTOM && b === BOTTOM)) return null;
  return b === a ? `${from} and ${to} are in the same layer and may not use each other` : `${from} may not import ${to}, which is above it`;
}

describe('layers of src/', () => {
  const files = sourceFiles(SRC);

  it('finds the parts it knows, and imports in them', () => {
    expect(new Set(files.map(partOf))).toEqual(new Set(Object.keys(LAYERS)));
    expect(files.flatMap(importsOf).length).toBeGreaterThan(100);
  });

  it('has every import go down the layers or stay in its folder', () => {
    const problems = files.flatMap(importsOf).flatMap((imp) => {
      if (!imp.target.startsWith(SRC + sep)) return [`${relative(SRC, imp.file)}:${imp.line}: imports from outside src/`];
      const why = violation(partOf(imp.file), partOf(imp.target));
      return why === null ? [] : [`src/${relative(SRC, imp.file)}:${imp.line}: ${why} (${relative(SRC, imp.target)})`];
    });
    expect(problems).toEqual([]);
  });

  it('tells a wrong import from a right one', () => {
    expect(violation('proxy', 'server')).toMatch(/above it/);
    expect(violation('access', 'proxy')).toMatch(/same layer/);
    expect(violation('events', 'auth')).toMatch(/same layer/);
    expect(violation('web', 'server')).toMatch(/above it/);
    expect(violation('registry', 'access')).toMatch(/above it/);
    expect(violation('server', 'registry')).toBeNull();
    expect(violation('config', 'errors')).toBeNull();
    expect(violation('registry', 'config')).toBeNull();
  });
});
