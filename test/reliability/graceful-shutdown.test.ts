// SIGTERM in the middle of a 200 MB upload: the upload still completes (201, stored whole), new
// connections are refused at once, and the process exits 0.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization } from '../helpers/gateway.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { freePort } from '../helpers/tools.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');
const MIB = 1024 * 1024;
const CHUNKS = 200;

let dir: string;
let pki: TestPki;
let htpasswd: string;
let registry: TestRegistry;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-shutdown-'));
  pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
  htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 5 }]);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

function send(port: number, method: string, path: string, body?: (req: import('node:http').ClientRequest) => void): Promise<Answer> {
  return new Promise((done, fail) => {
    const req = https.request(
      { host: '127.0.0.1', port, method, path, ca: pki.caPem, servername: 'localhost', agent: false,
        headers: { authorization: basicAuthorization('alice', 'alice-secret'), ...(body ? { 'content-length': String(CHUNKS * MIB), 'content-type': 'application/octet-stream' } : { 'content-length': '0' }) } },
      (res) => {
        res.resume();
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', fail);
    if (body) body(req);
    else req.end();
  });
}

describe('graceful shutdown', () => {
  it('finishes a 200 MB upload under way at SIGTERM, refuses new connections, and exits 0', async () => {
    const block = randomBytes(MIB);
    const hash = createHash('sha256');
    for (let i = 0; i < CHUNKS; i++) hash.update(block);
    const digest = `sha256:${hash.digest('hex')}`;

    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--upstream', registry.url,
      '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1', '--log-level', 'warn'],
    { env: { PATH: process.env.PATH ?? '' } });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      // Ready when it answers.
      for (let i = 0; ; i++) {
        try {
          await send(port, 'GET', '/healthz');
          break;
        } catch (err) {
          if (i > 200 || child.exitCode !== null) throw new Error(`gateway did not start: ${String(err)}\n${log}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const started = await send(port, 'POST', '/v2/shutdown/test/blobs/uploads/');
      expect(started.status).toBe(202);
      const location = String(started.headers.location);

      let sent = 0;
      const upload = send(port, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`, (req) => {
        // Steady, throttled: about 4 s in all, so SIGTERM lands in the middle.
        const next = () => {
          if (sent === CHUNKS) return void req.end();
          sent++;
          if (req.write(block)) setTimeout(next, 20);
          else req.once('drain', () => setTimeout(next, 20));
        };
        next();
      });
      while (sent < CHUNKS / 4) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      expect(sent).toBeLessThan(CHUNKS);
      await expect(send(port, 'GET', '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      const done = await upload;
      expect(done.status).toBe(201);
      expect(done.headers['docker-content-digest']).toBe(digest);
      expect(await exit).toBe(0);

      // Stored whole: the registry itself serves every byte of it.
      const stored = await fetch(`${registry.url}/v2/shutdown/test/blobs/${digest}`, { method: 'HEAD' });
      expect(stored.status).toBe(200);
      expect(stored.headers.get('content-length')).toBe(String(CHUNKS * MIB));
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});
