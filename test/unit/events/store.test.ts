// The gateway's record of events: a JSON-lines file, kept across restarts, bounded in memory and
// on disk, private, and whole after a torn last line.
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { GatewayEvent } from '../../../src/events/event.js';
import { openEventStore, type EventStore, type EventStoreOptions } from '../../../src/events/store.js';
import { sampleEvent } from '../../helpers/events.js';

const START = Date.parse('2024-01-01T00:00:00.000Z');
const DAY = 24 * 60 * 60 * 1000;
const SILENT = pino({ level: 'silent' });

let dir: string;
let files = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-events-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const freshFile = () => join(dir, `record-${++files}`, 'events.jsonl');

const event = (n: number, fields: Partial<GatewayEvent> = {}): GatewayEvent => sampleEvent(n, fields, START);

/** Opens a store closed at the end of the test; its clock reads `clock.now`. */
async function open(options: Partial<EventStoreOptions> & { file: string }, clock = { now: START + DAY }): Promise<EventStore> {
  const store = await openEventStore({ maxEvents: 1000, maxAgeMs: 30 * DAY, log: SILENT, now: () => clock.now, ...options });
  onTestFinished(() => store.close());
  return store;
}

function capturingLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

const linesOf = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '');

describe('openEventStore', () => {
  it('keeps appended events across a reopen, and answers them newest first, filtered and paged', async () => {
    const file = freshFile();
    const first = await open({ file });
    await first.append(event(1));
    await first.append(event(2, { action: 'delete', user: 'bob', tag: 'v1' }));
    await first.append(event(3, { action: 'denied', repository: 'other', user: 'bob', reason: 'access denied' }));
    await first.append(event(4));
    await first.close();

    const again = await open({ file });
    expect(again.query({}).map((e) => e.id)).toEqual([event(4).id, event(3).id, event(2).id, event(1).id]);
    expect(again.query({})[1]).toEqual(event(3, { action: 'denied', repository: 'other', user: 'bob', reason: 'access denied' }));
    expect(again.query({ user: 'bob' }).map((e) => e.id)).toEqual([event(3).id, event(2).id]);
    expect(again.query({ action: 'push' }).map((e) => e.id)).toEqual([event(4).id, event(1).id]);
    expect(again.query({ repository: 'other' }).map((e) => e.id)).toEqual([event(3).id]);
    expect(again.query({ limit: 2 }).map((e) => e.id)).toEqual([event(4).id, event(3).id]);
    expect(again.query({ limit: 2, before: event(3).id }).map((e) => e.id)).toEqual([event(2).id, event(1).id]);
    expect(again.query({ before: 'no-such-id' })).toEqual([]);
    expect(again.stats()).toEqual({ events: 4, fileBytes: (await stat(file)).size });
  });

  it('skips a torn last line with one warning naming the file, keeps the rest, and rewrites the file whole', async () => {
    const file = freshFile();
    const first = await open({ file });
    for (let n = 1; n <= 3; n++) await first.append(event(n));
    await first.close();
    await appendFile(file, '{"id":"0000000000000000000000000000000f","timest');

    const { log, lines } = capturingLog();
    const again = await open({ file, log });
    expect(again.query({}).map((e) => e.id)).toEqual([event(3).id, event(2).id, event(1).id]);
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ file, skipped: 1 });
    // The torn line is gone, so the next append starts a line of its own.
    expect(await readFile(file, 'utf8')).toMatch(/\}\n$/);
    await again.append(event(4));
    await again.close();

    const third = await open({ file, log });
    expect(third.query({}).map((e) => e.id)).toEqual([event(4).id, event(3).id, event(2).id, event(1).id]);
    expect(lines.filter((line) => line.level === 40)).toHaveLength(1);
  });

  it('skips lines that parse but are not events, and blank ones', async () => {
    const file = freshFile();
    const { log, lines } = capturingLog();
    const good = JSON.stringify(event(2));
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, ['{"id":"x"}', '', JSON.stringify({ ...event(1), action: 'pull' }), good, '[1,2]', ''].join('\n'));
    const store = await open({ file, log });
    expect(store.query({})).toEqual([event(2)]);
    expect(lines.find((line) => line.level === 40)).toMatchObject({ skipped: 3 });
    expect(await linesOf(file)).toEqual([good]);
  });

  it('keeps at most maxEvents in memory, and compaction keeps the file under twice that', async () => {
    const file = freshFile();
    const store = await open({ file, maxEvents: 10 });
    for (let n = 1; n <= 35; n++) await store.append(event(n));
    expect(store.stats().events).toBe(10);
    expect(store.query({ limit: 1000 }).map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => event(35 - i).id));
    const kept = await linesOf(file);
    expect(kept.length).toBeLessThanOrEqual(20);
    expect(kept.length).toBeGreaterThanOrEqual(10);
    expect(store.stats().fileBytes).toBe((await stat(file)).size);
    await store.close();

    const again = await open({ file, maxEvents: 10 });
    expect(again.query({}).map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => event(35 - i).id));
    // Reopened with a smaller bound: only the newest kept, and the file rewritten to them.
    await again.close();
    const smaller = await open({ file, maxEvents: 3 });
    expect(smaller.query({}).map((e) => e.id)).toEqual([event(35).id, event(34).id, event(33).id]);
    expect(await linesOf(file)).toHaveLength(3);
  });

  it('drops events older than maxAgeMs, on append and at open', async () => {
    const file = freshFile();
    const clock = { now: START };
    const store = await open({ file, maxAgeMs: 60_000 }, clock);
    await store.append(event(0));
    await store.append(event(10));
    clock.now = START + 65_000; // event 0 is 65 s old, event 10 is 55 s old
    expect(store.query({}).map((e) => e.id)).toEqual([event(10).id]);
    clock.now = START + 80_000;
    await store.append(event(80));
    expect(store.query({}).map((e) => e.id)).toEqual([event(80).id]);
    expect(store.stats().events).toBe(1);
    await store.close();

    clock.now = START + 100_000;
    const again = await open({ file, maxAgeMs: 60_000 }, clock);
    expect(again.query({}).map((e) => e.id)).toEqual([event(80).id]);
    expect(await linesOf(file)).toHaveLength(1);
  });

  it('finds the newest push of a tag, or failing that of a digest', async () => {
    const store = await open({ file: freshFile(), maxEvents: 4 });
    const d1 = event(1).digest;
    const d2 = event(2).digest;
    await store.append(event(1, { tag: 'latest', digest: d1 }));
    await store.append(event(2, { tag: 'latest', digest: d2 }));
    await store.append(event(3, { action: 'delete', tag: 'latest', digest: d2, user: 'bob' }));
    await store.append(event(4, { repository: 'other', tag: 'latest', digest: d1 }));

    expect(store.lastPush('team/app', 'latest', null)?.id).toBe(event(2).id);
    expect(store.lastPush('team/app', 'latest', d1)?.id).toBe(event(2).id);
    expect(store.lastPush('team/app', 'unknown', d1)?.id).toBe(event(1).id);
    expect(store.lastPush('team/app', null, d2)?.id).toBe(event(2).id);
    expect(store.lastPush('other', 'latest', null)?.id).toBe(event(4).id);
    expect(store.lastPush('nothing', 'latest', d1)).toBeNull();

    // Pushed out of memory by maxEvents: no longer found.
    await store.append(event(5, { repository: 'third' }));
    expect(store.lastPush('team/app', 'unknown', d1)).toBeNull();
    expect(store.lastPush('team/app', 'latest', null)?.id).toBe(event(2).id);
  });

  it('makes the folder 0700 and the file 0600, also after compaction', async () => {
    const file = freshFile();
    const store = await open({ file, maxEvents: 2 });
    await store.append(event(1));
    expect((await stat(join(file, '..'))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    for (let n = 2; n <= 8; n++) await store.append(event(n));
    expect(await linesOf(file)).not.toHaveLength(8); // compacted
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('close waits for every append already made, and refuses later ones', async () => {
    const file = freshFile();
    const store = await open({ file });
    const appends = Array.from({ length: 200 }, (_, i) => store.append(event(i + 1)));
    await store.close();
    await Promise.all(appends);
    await expect(store.append(event(201))).rejects.toThrow(/closed/);

    const again = await open({ file });
    const kept = again.query({ limit: 1000 });
    expect(kept).toHaveLength(200);
    expect(kept.map((e) => e.id)).toEqual(Array.from({ length: 200 }, (_, i) => event(200 - i).id));
  });

  it('loses nothing when appends race a compaction', async () => {
    const file = freshFile();
    const store = await open({ file, maxEvents: 50 });
    const appends = Array.from({ length: 500 }, (_, i) => store.append(event(i + 1)));
    await Promise.all(appends);
    await store.close();
    const lines = (await linesOf(file)).map((line) => (JSON.parse(line) as GatewayEvent).id);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.slice(-50)).toEqual(Array.from({ length: 50 }, (_, i) => event(451 + i).id));
  });
});
