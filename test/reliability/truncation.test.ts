// An upstream that breaks after it has sent its response head (a download) or while it reads a
// request body (an upload). What the client gets must never look complete: fewer bytes than the
// Content-Length and then a closed connection, or a chunked body without its final chunk, within a
// second of the break; an upload gets an error status or a closed connection, never a 2xx. And the
// gateway holds no socket of the broken exchange afterwards.
//
// The clients are raw TLS sockets, so the test sees every byte the gateway wrote and the moment it
// closed; the upstream writes raw bytes, so the break lands exactly where the test says.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { responseHead, startRawUpstream, type RawExchange, type RawUpstream } from '../helpers/upstreams.js';
import { spawnGateway, type GatewayWithUser } from '../helpers/gateway-process.js';
import { eventually, sleep } from '../helpers/wait.js';

const ADVERTISED = 1_000_000;

let upstream: RawUpstream;
let gateway: GatewayWithUser;
let baselineFds: number;
/** When the upstream broke the exchange of the current case. */
let brokeAt = 0;

/** Ends the upstream side: a TCP reset, or a plain close (FIN) before the body is complete. */
function breakOff(socket: RawExchange['socket'], how: 'reset' | 'close'): void {
  brokeAt = Date.now();
  if (how === 'reset') socket.resetAndDestroy();
  else socket.end();
}

function chunk(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')]);
}

/** Reads a request body up to `bytes`, then breaks the connection. */
function breakAfterReading(exchange: RawExchange, bytes: number, how: 'reset' | 'close'): void {
  let seen = exchange.rest.length;
  const check = () => {
    if (seen >= bytes && !exchange.socket.destroyed) breakOff(exchange.socket, how);
  };
  exchange.socket.on('data', (c: Buffer) => {
    seen += c.length;
    check();
  });
  check();
}

// Each case's request path picks what the upstream does.
function misbehave(exchange: RawExchange): void {
  const { socket, target } = exchange;
  const how = target.includes('/fin/') ? 'close' : 'reset';
  const later = (fn: () => void) => setTimeout(fn, 50);
  if (target === '/v2/') {
    socket.end(responseHead('HTTP/1.1 200 OK', ['Content-Type: application/json', 'Content-Length: 2', 'Connection: close']) + '{}');
  } else if (target.startsWith('/v2/length/')) {
    socket.write(responseHead('HTTP/1.1 200 OK', ['Content-Type: application/octet-stream', `Content-Length: ${ADVERTISED}`]));
    socket.write(Buffer.alloc(64 * 1024, 1), () => later(() => breakOff(socket, how)));
  } else if (target.startsWith('/v2/head-only/')) {
    socket.write(responseHead('HTTP/1.1 200 OK', ['Content-Type: application/octet-stream', `Content-Length: ${ADVERTISED}`]), () =>
      later(() => breakOff(socket, how)));
  } else if (target.startsWith('/v2/chunked/')) {
    socket.write(responseHead('HTTP/1.1 200 OK', ['Content-Type: application/json', 'Transfer-Encoding: chunked']));
    socket.write(Buffer.concat([chunk(Buffer.from('{"tags":["a",')), chunk(Buffer.from('"b",'))]), () => later(() => breakOff(socket, how)));
  } else if (target.startsWith('/v2/mid-chunk/')) {
    socket.write(responseHead('HTTP/1.1 200 OK', ['Content-Type: application/octet-stream', 'Transfer-Encoding: chunked']));
    socket.write(Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(30_000, 2)]), () => later(() => breakOff(socket, how)));
  } else if (target.startsWith('/v2/upload-partial/')) {
    breakAfterReading(exchange, 256 * 1024, how);
  } else if (target.startsWith('/v2/upload-whole/')) {
    const length = Number(/^content-length: *(\d+)/im.exec(exchange.head)?.[1]);
    breakAfterReading(exchange, length, how);
  }
}

beforeAll(async () => {
  upstream = await startRawUpstream(misbehave);
  gateway = await spawnGateway(upstream.url);
  // One request through the whole path first (password check, upstream connection), so the
  // baseline counts what the process keeps anyway.
  const warm = await exchange('GET', '/v2/');
  expect(warm.status).toBe(200);
  await sleep(200);
  baselineFds = gateway.fdCount();
});
afterAll(async () => {
  await gateway?.stop();
  await upstream?.stop();
});

interface Received {
  /** Status of the response head, 0 when none arrived. */
  status: number;
  head: string;
  body: Buffer;
  /** When the gateway closed the connection. */
  closedAt: number;
}

interface Upload {
  bytes: number;
  chunked: boolean;
}

/**
 * One request over its own TLS connection (kept alive, so only the gateway can close it); returns
 * what came back once the gateway closed it, or once a whole Content-Length body arrived. A gateway
 * that keeps the connection open after a short body is what the cases look for: after 3 s the wait
 * ends and `closedAt` stays Infinity. An upload streams its body until the gateway answers or closes.
 */
function exchange(method: string, path: string, upload?: Upload): Promise<Received> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: gateway.port, ca: gateway.pki.caPem, servername: 'localhost' });
    const chunks: Buffer[] = [];
    let closedAt = Number.POSITIVE_INFINITY;
    const timer = setTimeout(() => socket.destroy(), 3_000);
    socket.on('secureConnect', () => {
      const framing = upload === undefined ? '' : upload.chunked ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${upload.bytes}\r\n`;
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${gateway.authorization}\r\n${framing}\r\n`);
      if (upload !== undefined) streamBody(socket, upload, () => chunks.length > 0);
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // A whole answer: the gateway may keep the connection for the next request, we are done.
      const { head, body } = split(Buffer.concat(chunks));
      const length = contentLength(head);
      if (length !== null && body.length >= length) {
        closedAt = Date.now();
        socket.end();
      }
    });
    const closedByGateway = () => (closedAt = Math.min(closedAt, Date.now()));
    socket.on('end', closedByGateway);
    socket.on('error', closedByGateway); // a reset
    socket.on('close', () => {
      clearTimeout(timer);
      const { head, body } = split(Buffer.concat(chunks));
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body, closedAt });
    });
  });
}

function split(all: Buffer): { head: string; body: Buffer } {
  const headEnd = all.indexOf('\r\n\r\n');
  if (headEnd === -1) return { head: all.toString('latin1'), body: Buffer.alloc(0) };
  return { head: all.subarray(0, headEnd).toString('latin1'), body: all.subarray(headEnd + 4) };
}

function streamBody(socket: tls.TLSSocket, upload: Upload, answered: () => boolean): void {
  const piece = Buffer.alloc(64 * 1024, 3);
  let sent = 0;
  const pump = () => {
    while (sent < upload.bytes && !answered() && !socket.destroyed) {
      sent += piece.length;
      const ok = socket.write(upload.chunked ? chunk(piece) : piece);
      if (!ok) return void socket.once('drain', pump);
    }
    if (upload.chunked && sent >= upload.bytes && !socket.destroyed) socket.write('0\r\n\r\n');
  };
  pump();
}

/** Payload bytes of a chunked body, and whether it had the final (zero-size) chunk. */
function decodeChunked(body: Buffer): { payload: number; terminated: boolean } {
  let at = 0;
  let payload = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd === -1) return { payload, terminated: false };
    const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) throw new Error(`not a chunk size line: ${body.subarray(at, lineEnd).toString('latin1')}`);
    if (size === 0) return { payload, terminated: true };
    const end = lineEnd + 2 + size;
    if (body.length < end + 2) return { payload: payload + body.length - lineEnd - 2, terminated: false };
    payload += size;
    at = end + 2;
  }
}

function contentLength(head: string): number | null {
  const match = /^content-length: *(\d+)$/im.exec(head);
  return match ? Number(match[1]) : null;
}

/** The broken exchange leaves nothing open in the gateway: its descriptors come back to the baseline. */
async function expectNoSocketLeft(): Promise<void> {
  let fds = gateway.fdCount();
  await eventually(() => (fds = gateway.fdCount()) <= baselineFds, 2_000, 20);
  expect(fds).toBeLessThanOrEqual(baselineFds);
  expect(gateway.alive()).toBe(true);
}

function expectClosedWithinASecondOfTheBreak(received: Received): void {
  expect(brokeAt).toBeGreaterThan(0);
  expect(received.closedAt - brokeAt).toBeLessThan(1_000);
}

describe('a download whose upstream breaks after the response head', () => {
  for (const how of ['reset', 'close'] as const) {
    const via = how === 'reset' ? 'a TCP reset' : 'a plain close';
    it(`ends a Content-Length body short of its length and closes the connection within a second (${via})`, async () => {
      brokeAt = 0;
      const received = await exchange('GET', `/v2/length/${how === 'close' ? 'fin/' : ''}blobs/sha256:aa`);
      expect(received.status).toBe(200);
      expect(contentLength(received.head)).toBe(ADVERTISED);
      expect(received.body.length).toBeGreaterThan(0);
      expect(received.body.length).toBeLessThan(ADVERTISED);
      expectClosedWithinASecondOfTheBreak(received);
      await expectNoSocketLeft();
    });

    it(`never sends the final chunk of a chunked body and closes the connection within a second (${via})`, async () => {
      brokeAt = 0;
      const received = await exchange('GET', `/v2/chunked/${how === 'close' ? 'fin/' : ''}tags/list`);
      expect(received.status).toBe(200);
      expect(received.head).toMatch(/^transfer-encoding: chunked$/im);
      const body = decodeChunked(received.body);
      expect(body.terminated).toBe(false);
      expectClosedWithinASecondOfTheBreak(received);
      await expectNoSocketLeft();
    });

    it(`never completes a chunk the upstream broke off in the middle of (${via})`, async () => {
      brokeAt = 0;
      const received = await exchange('GET', `/v2/mid-chunk/${how === 'close' ? 'fin/' : ''}blobs/sha256:bb`);
      expect(received.status).toBe(200);
      const body = decodeChunked(received.body);
      expect(body.terminated).toBe(false);
      expect(body.payload).toBeLessThanOrEqual(30_000);
      expectClosedWithinASecondOfTheBreak(received);
      await expectNoSocketLeft();
    });

    it(`never makes a body the upstream sent none of look complete (${via} right after the head)`, async () => {
      brokeAt = 0;
      const received = await exchange('GET', `/v2/head-only/${how === 'close' ? 'fin/' : ''}blobs/sha256:cc`);
      // Either the head went out and the body is short, or the client got an error, or nothing.
      if (received.status === 200) {
        expect(contentLength(received.head)).toBe(ADVERTISED);
        expect(received.body.length).toBeLessThan(ADVERTISED);
      } else if (received.status !== 0) {
        expect(received.status).toBeGreaterThanOrEqual(500);
      }
      expectClosedWithinASecondOfTheBreak(received);
      await expectNoSocketLeft();
    });
  }
});

describe('an upload whose upstream breaks while reading it', () => {
  for (const chunked of [false, true]) {
    const framing = chunked ? 'chunked' : 'Content-Length';
    it(`answers a ${framing} upload broken off half-way with an error status or a closed connection, never a 2xx`, async () => {
      brokeAt = 0;
      const received = await exchange('PUT', `/v2/upload-partial/${framing}/blobs/uploads/u1?digest=sha256:dd`, { bytes: 64 * 1024 * 1024, chunked });
      expect(brokeAt).toBeGreaterThan(0);
      if (received.status !== 0) expect(received.status).toBeGreaterThanOrEqual(400);
      expect(received.head).not.toMatch(/^HTTP\/1\.1 2/);
      expectClosedWithinASecondOfTheBreak(received);
      await expectNoSocketLeft();
    });
  }

  it('answers 502 when the upstream read the whole upload and broke off instead of answering', async () => {
    brokeAt = 0;
    const received = await exchange('PUT', '/v2/upload-whole/blobs/uploads/u2?digest=sha256:ee', { bytes: 1024 * 1024, chunked: false });
    expect(received.status).toBe(502);
    expect(JSON.parse(received.body.toString()).errors[0].code).toBe('UNAVAILABLE');
    // The gateway had read the whole request, so it may keep the connection; the client closed it then.
    await expectNoSocketLeft();
  });
});
