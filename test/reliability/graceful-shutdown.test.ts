// SIGTERM in the middle of a 200 MB upload: the upload still completes (201, stored whole), new
// connections are refused at once, and the process exits 0.
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, makeGatewayFiles } from '../helpers/gateway.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import type { TestPki } from '../helpers/pki.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { sleep } from '../helpers/wait.js';

const MIB = 1024 * 1024;
const CHUNKS = 200;

let dir: string;
let pki: TestPki;
let htpasswd: string;
let registry: TestRegistry;
beforeAll(async () => {
  ({ dir, pki, htpasswd } = await makeGatewayFiles('rgw-shutdown-'));
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

    // Ready when it answers.
    const gateway = await startGatewayProcess(['--upstream', registry.url,
      '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1', '--log-level', 'warn'], { ca: pki.caPem });
    const { child, exit, port } = gateway;
    try {
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
      while (sent < CHUNKS / 4) await sleep(20);
      child.kill('SIGTERM');
      await sleep(300);
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
