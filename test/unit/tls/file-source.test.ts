// The certificate source of files given by flags: checked at start, followed after.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCertificateFiles } from '../../../src/tls/file-source.js';
import type { CertificatePair } from '../../../src/tls/source.js';
import { makeTestPki, type TestPki } from '../../helpers/pki.js';

let dir: string;
let first: TestPki;
let second: TestPki;
const names = { hosts: ['localhost'], ips: ['127.0.0.1'] };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-file-source-'));
  [first, second] = await Promise.all([makeTestPki(join(dir, 'first'), names), makeTestPki(join(dir, 'second'), names)]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function memoryLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)) });
  return { log, lines };
}

describe('openCertificateFiles', () => {
  it('names every problem by its option, and gives no source then', async () => {
    const opened = await openCertificateFiles({ cert: { file: join(dir, 'none.crt'), source: '--tls-cert' }, key: { file: join(dir, 'none.key'), source: 'GATEWAY_TLS_KEY' } });
    expect(opened.source).toBeNull();
    expect(opened.problems).toEqual([expect.stringMatching(/^--tls-cert: certificate file .*none\.crt does not exist/), expect.stringMatching(/^GATEWAY_TLS_KEY: private key file .*none\.key does not exist/)]);
  });

  it('serves the pair, takes a renewed one on reload and keeps it when the next is broken', async () => {
    const cert = join(dir, 'server.crt');
    const key = join(dir, 'server.key');
    await copyFile(first.serverCert, cert);
    await copyFile(first.serverKey, key);
    const opened = await openCertificateFiles({ cert: { file: cert, source: '--tls-cert' }, key: { file: key, source: '--tls-key' } });
    expect(opened.problems).toEqual([]);
    const source = opened.source!;
    expect(source.current()).toEqual({ cert: await readFile(first.serverCert, 'utf8'), key: await readFile(first.serverKey, 'utf8') });

    const { log, lines } = memoryLog();
    const seen: CertificatePair[] = [];
    const stop = source.onChange((pair) => seen.push(pair));
    source.start(log);
    try {
      await copyFile(second.serverCert, cert);
      await copyFile(second.serverKey, key);
      expect(await source.reload()).toBe(true);
      const renewed = { cert: await readFile(second.serverCert, 'utf8'), key: await readFile(second.serverKey, 'utf8') };
      expect(source.current()).toEqual(renewed);
      expect(seen).toEqual([renewed]);
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'certificate reloaded for new connections', cert }));

      await writeFile(key, await readFile(first.serverKey, 'utf8'));
      expect(await source.reload()).toBe(false);
      expect(source.current()).toEqual(renewed);
      expect(seen).toHaveLength(1);
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'certificate not reloaded: keeping the previous one', cert, key, problems: [expect.stringContaining('does not belong to the certificate')] }));

      stop();
      await copyFile(second.serverKey, key);
      expect(await source.reload()).toBe(true);
      expect(seen).toHaveLength(1);
    } finally {
      source.close();
    }
  });
});
