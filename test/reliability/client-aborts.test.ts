// 1,000 clients that give up half-way (during a download, an upload, or while the upstream has
// not answered yet): every upstream request they started is torn down within a second, and the
// gateway's sockets and file descriptors come back to where they were.
import { rm } from 'node:fs/promises';
import type http from 'node:http';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/upstreams.js';
import { basicAuthorization, makeGatewayFiles } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import type { TestPki } from '../helpers/pki.js';
import { eventually } from '../helpers/wait.js';

const ABORTS = 1_000;
const PARALLEL = 50;
const auth = basicAuthorization('alice', 'alice-secret');

let dir: string;
let pki: TestPki;
let upstream: FakeUpstream;
let gateway: GatewayProcess;
let port: number;
// Upstream requests still open (their socket not closed), and when each closed.
const open = new Set<http.IncomingMessage>();

// Streams without end, reads without end, or never answers: the client always leaves first.
function upstreamHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  open.add(req);
  req.socket.once('close', () => open.delete(req));
  if (req.url === '/v2/') {
    open.delete(req);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}');
  } else if (req.url?.startsWith('/v2/down/')) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(1 << 30) });
    const chunk = Buffer.alloc(64 * 1024, 7);
    const timer = setInterval(() => res.write(chunk), 5);
    res.on('close', () => clearInterval(timer));
  } else if (req.url?.startsWith('/v2/up/')) {
    req.resume(); // reads whatever comes, answers only at the end that never comes
  } else {
    // /v2/wait/...: silent
  }
}

beforeAll(async () => {
  const files = await makeGatewayFiles('rgw-aborts-');
  ({ dir, pki } = files);
  const htpasswd = files.htpasswd;
  upstream = await startFakeUpstream(upstreamHandler);
  gateway = await startGatewayProcess(['--upstream', upstream.url, '--tls-cert', pki.serverCert,
    '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1', '--log-level', 'warn'], { ca: pki.caPem, stdin: 'ignore' });
  port = gateway.port;
  await exchange('GET /v2/ HTTP/1.1', 0, 'response');
});
afterAll(async () => {
  await gateway?.kill();
  await upstream?.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * One client: sends the request head (and `bodyBytes` of body), waits until `until` (the response
 * head, or a moment), then either reads to the end (`response`) or drops the connection.
 */
function exchange(requestLine: string, bodyBytes: number, until: 'response' | 'headers' | 'moment'): Promise<void> {
  return new Promise((done, fail) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, servername: 'localhost' });
    let received = '';
    socket.on('error', (err) => (until === 'response' ? fail(err) : done()));
    socket.on('secureConnect', () => {
      const length = bodyBytes > 0 ? `Content-Length: ${10 * bodyBytes}\r\n` : '';
      socket.write(`${requestLine}\r\nHost: localhost\r\nAuthorization: ${auth}\r\n${length}Connection: close\r\n\r\n`);
      if (bodyBytes > 0) socket.write(Buffer.alloc(bodyBytes, 1));
      if (until === 'moment') setTimeout(() => (socket.destroy(), done()), 20 + Math.random() * 30);
    });
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (until === 'headers' && received.includes('\r\n\r\n')) {
        setTimeout(() => (socket.destroy(), done()), Math.random() * 30);
        until = 'moment'; // once
      }
    });
    socket.on('end', () => (received.startsWith('HTTP/1.1 200') ? done() : fail(new Error(received))));
  });
}

describe('client aborts', () => {
  it(`tears down the upstream side of ${ABORTS} abandoned downloads, uploads and waits, and leaks no socket or descriptor`, async () => {
    const baseline = gateway.fdCount();
    const kinds = [
      () => exchange(`GET /v2/down/${Math.random()} HTTP/1.1`, 0, 'headers'),
      () => exchange(`PUT /v2/up/${Math.random()} HTTP/1.1`, 256 * 1024, 'moment'),
      () => exchange(`GET /v2/wait/${Math.random()} HTTP/1.1`, 0, 'moment'),
    ];
    let next = 0;
    const worker = async () => {
      while (next < ABORTS) {
        const i = next++;
        await kinds[i % kinds.length]!();
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const lastAbort = Date.now();

    // Every upstream request those clients started is closed within a second of the last abort.
    await eventually(() => open.size === 0, lastAbort + 1_000 - Date.now(), 20);
    expect(open.size).toBe(0);
    expect(upstream.requests.length).toBeGreaterThan(ABORTS / 2);

    // And the gateway holds no more descriptors than before (closed connections free theirs).
    let fds = gateway.fdCount();
    await eventually(() => (fds = gateway.fdCount()) <= baseline, lastAbort + 3_000 - Date.now(), 50);
    expect(fds).toBeLessThanOrEqual(baseline);
    // Still serving.
    await exchange('GET /v2/ HTTP/1.1', 0, 'response');
  }, 120_000);
});
