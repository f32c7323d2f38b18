// A slow but steady upload outlasts every default timeout: the gateway (as installed, default
// --idle-timeout 300 s, --upstream-timeout 300 s, --headers-timeout 60 s) only cuts a transfer
// whose bytes stop flowing, never one that merely takes long. Node's HTTP server, left to its own
// defaults, would end any request after 300 s (its requestTimeout); this pins that it does not.
//
// This is the slow test of the suite: it lasts a little over five minutes by design.
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, makeGatewayFiles } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import type { TestPki } from '../helpers/pki.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const REPO = 'slow/upload';
const auth = basicAuthorization('alice', 'alice-secret');

// 4 KiB every 250 ms for 310 s: about 5 MiB, ten seconds past the 300 s defaults.
const PIECE_BYTES = 4 * 1024;
const INTERVAL_MS = 250;
const DURATION_MS = 310_000;
const PIECES = DURATION_MS / INTERVAL_MS;

let dir: string;
let pki: TestPki;
let registry: TestRegistry;
let gateway: GatewayProcess;
let port: number;

beforeAll(async () => {
  const files = await makeGatewayFiles('rgw-slow-upload-');
  ({ dir, pki } = files);
  const htpasswd = files.htpasswd;
  registry = await startRegistry();
  // No timeout flags and no GATEWAY_* variables: the defaults are what is under test.
  gateway = await startGatewayProcess(['--upstream', registry.url, '--tls-cert', pki.serverCert,
    '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1', '--log-level', 'warn'], { ca: pki.caPem });
  port = gateway.port;
});
afterAll(async () => {
  await gateway?.kill();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request to the gateway as alice; `write` streams the body, else the body is empty. */
function send(method: string, path: string, write?: (req: import('node:http').ClientRequest) => void): Promise<Answer> {
  return new Promise((done, fail) => {
    const headers: Record<string, string> = { authorization: auth };
    if (write) headers['content-type'] = 'application/octet-stream';
    else headers['content-length'] = '0';
    const req = https.request({ host: '127.0.0.1', port, method, path, ca: pki.caPem, servername: 'localhost', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', fail);
    });
    req.on('error', fail);
    if (write) write(req);
    else req.end();
  });
}

/**
 * Streams PIECES random pieces as one chunked PATCH (as Docker pushes a layer), piece i at
 * start + i * INTERVAL_MS whatever the previous writes took, so the rate stays steady.
 * Resolves with the answer, the digest and length of what was sent, and how long it took.
 */
async function throttledPatch(path: string): Promise<{ answer: Answer; digest: string; bytes: number; ms: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const start = Date.now();
  const answer = await send('PATCH', path, (req) => {
    let i = 0;
    const next = () => {
      if (req.destroyed) return;
      if (i === PIECES) return void req.end();
      const piece = randomBytes(PIECE_BYTES);
      hash.update(piece);
      bytes += piece.length;
      i++;
      const wait = () => setTimeout(next, Math.max(0, start + i * INTERVAL_MS - Date.now()));
      if (req.write(piece)) wait();
      else req.once('drain', wait);
    };
    next();
  }).catch((err: unknown) => {
    throw new Error(`the upload was cut after ${((Date.now() - start) / 1000).toFixed(1)} s, ${bytes} bytes: ${String(err)}\n${gateway.output()}`);
  });
  return { answer, digest: `sha256:${hash.digest('hex')}`, bytes, ms: Date.now() - start };
}

const withDigest = (location: string, digest: string) => `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;

describe('slow upload', () => {
  it('a steady throttled upload lasting over five minutes completes', async () => {
    const started = await send('POST', `/v2/${REPO}/blobs/uploads/`);
    expect(started.status).toBe(202);

    const patch = await throttledPatch(String(started.headers.location));
    expect(patch.ms).toBeGreaterThan(300_000);
    expect(patch.answer.status, patch.answer.body.toString()).toBe(202);
    expect(patch.answer.headers.range).toBe(`0-${patch.bytes - 1}`);

    const put = await send('PUT', withDigest(String(patch.answer.headers.location), patch.digest));
    expect(put.status, put.body.toString()).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(patch.digest);

    // Stored whole: the blob read back through the gateway hashes to what was sent.
    const got = await send('GET', `/v2/${REPO}/blobs/${patch.digest}`);
    expect(got.status).toBe(200);
    expect(got.body.length).toBe(patch.bytes);
    expect(`sha256:${createHash('sha256').update(got.body).digest('hex')}`).toBe(patch.digest);
  }, 420_000);
});
