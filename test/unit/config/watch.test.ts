// The one file watcher behind the htpasswd file, the access file and the certificates.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchFiles } from '../../../src/config/watch.js';
import { eventually } from '../../helpers/wait.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-watch-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('watchFiles', () => {
  it('reads on a change and hands what it read to take, with the file\'s stamp', async () => {
    const file = join(dir, 'a.txt');
    await writeFile(file, 'one');
    const taken: Array<{ text: string; stamp: string | null }> = [];
    const watch = watchFiles({ files: [file], read: () => readFile(file, 'utf8'), take: (text, stamp) => (taken.push({ text, stamp }), true), settleMs: 10 });
    try {
      await writeFile(file, 'two, longer');
      expect(await eventually(() => taken.length > 0, 4_000)).toBe(true);
      expect(taken[0]!.text).toBe('two, longer');
      expect(taken[0]!.stamp).toMatch(/^\d+:11:/);
    } finally {
      watch.close();
    }
  });

  it('runs reloads one at a time, in order, and gives what take said', async () => {
    const file = join(dir, 'b.txt');
    await writeFile(file, 'x');
    let running = 0;
    let most = 0;
    let n = 0;
    const watch = watchFiles({
      files: [file],
      read: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        return ++n;
      },
      take: (count) => count !== 2,
    });
    try {
      expect(await Promise.all([watch.reload(), watch.reload(), watch.reload()])).toEqual([true, false, true]);
      expect(most).toBe(1);
    } finally {
      watch.close();
    }
  });

  it('gives a null stamp for a missing file', async () => {
    const watch = watchFiles({ files: [join(dir, 'missing')], read: async () => 0, take: (_, stamp) => stamp === null, settleMs: 1 });
    try {
      expect(await watch.reload()).toBe(true);
    } finally {
      watch.close();
    }
  });

  it('waits debounceMs after the last change of any file before reading', async () => {
    const files = [join(dir, 'c.crt'), join(dir, 'c.key')];
    for (const f of files) await writeFile(f, 'old');
    let reads = 0;
    const watch = watchFiles({ files, read: async () => ++reads, take: () => true, debounceMs: 300 });
    try {
      await writeFile(files[0]!, 'new cert');
      await writeFile(files[1]!, 'new key');
      expect(await eventually(() => reads > 0, 4_000)).toBe(true);
      await new Promise((r) => setTimeout(r, 400));
      expect(reads).toBe(1);
    } finally {
      watch.close();
    }
  });
});
