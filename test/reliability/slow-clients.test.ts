// Slow and stalled clients: a slowloris gets 408 at the headers timeout, a stalled upload and a
// reader that stops reading are cut at the idle timeout, and `Expect: 100-continue` is answered
// only once the credentials are checked.
import { createHash, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { eventually } from '../helpers/wait.js';

const auth = basicAuthorization('alice', 'alice-secret');
const BLOB = randomBytes(32 * 1024 * 1024);
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ extraArgs: ['--headers-timeout', '2', '--idle-timeout', '2'] });
  const started = await stack.request('/v2/slow/blob/blobs/uploads/', { method: 'POST' });
  const location = String(started.headers.location);
  const put = await stack.request(`${location}${location.includes('?') ? '&' : '?'}digest=${DIGEST}`, { method: 'PUT', body: BLOB });
  expect(put.status).toBe(201);
});
afterAll(() => stack.stop());

interface Conversation {
  readonly socket: tls.TLSSocket;
  /** Everything received so far, as latin1. */
  received(): string;
  /** Resolves with the milliseconds from `since` when the gateway closes the connection. */
  closed(since: number): Promise<number>;
}

function connect(): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: stack.gateway.port, ca: stack.pki.caPem, servername: 'localhost' });
    let text = '';
    const closing = new Promise<number>((r) => socket.on('close', () => r(Date.now())));
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('secureConnect', () =>
      resolve({ socket, received: () => text, closed: async (since) => (await closing) - since }),
    );
    socket.once('error', reject);
  });
}

describe('slow clients', () => {
  it('answers a slowloris 408 at the headers timeout and closes, though it keeps sending', async () => {
    const c = await connect();
    const start = Date.now();
    const head = `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\n`;
    let i = 0;
    const drip = setInterval(() => {
      if (!c.socket.destroyed) c.socket.write(i < head.length ? head[i++]! : 'X-Pad: 1\r\n');
    }, 100);
    try {
      const after = await c.closed(start);
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
      expect(after).toBeGreaterThanOrEqual(1_900);
      expect(after).toBeLessThan(4_000);
    } finally {
      clearInterval(drip);
    }
  });

  it('closes a connection whose upload stalls, at the idle timeout', async () => {
    const started = await stack.request('/v2/slow/stalled/blobs/uploads/', { method: 'POST' });
    const location = String(started.headers.location);
    const c = await connect();
    c.socket.write(`PATCH ${location} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n`);
    c.socket.write(randomBytes(4096));
    const start = Date.now();
    const after = await c.closed(start);
    expect(after).toBeGreaterThanOrEqual(1_500);
    expect(after).toBeLessThan(5_000);
    // Never a success for a body that did not arrive.
    expect(c.received()).not.toMatch(/^HTTP\/1\.1 2/);
  });

  it('closes a download whose reader stopped reading, at the idle timeout', async () => {
    stack.clearLogs();
    const c = await connect();
    // Reads nothing: the gateway's writes back up. (A paused client would not notice the close
    // either, so the gateway's own access line tells when it gave up.)
    c.socket.pause();
    c.socket.write(`GET /v2/slow/blob/blobs/${DIGEST} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\n\r\n`);
    const start = Date.now();
    const line = async () => stack.logLines().find((l) => l.msg === 'request' && String(l.path).includes('/blobs/sha256:'));
    await eventually(async () => (await line()) !== undefined, 10_000, 50);
    const after = Date.now() - start;
    expect(await line(), JSON.stringify(await line())).toMatchObject({ status: 200, completed: false });
    expect(after).toBeGreaterThanOrEqual(1_500);
    expect(after).toBeLessThan(5_000);
    c.socket.destroy();
  });
});

describe('Expect: 100-continue', () => {
  const head = (authorization: string) =>
    `PUT /v2/slow/expect/blobs/uploads/x?digest=${DIGEST} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${authorization}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`;

  it('refuses wrong credentials with 401 before inviting the body', async () => {
    const c = await connect();
    c.socket.write(head(basicAuthorization('alice', 'wrong')));
    // The first answer, whenever the password check ends (a busy machine takes longer).
    await eventually(() => c.received().includes('\r\n\r\n'), 15_000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 401 /);
    expect(c.received()).not.toContain('100 Continue');
    c.socket.destroy();
  });

  it('invites the body with 100 Continue once the credentials are right', async () => {
    const c = await connect();
    c.socket.write(head(auth));
    await eventually(() => c.received().includes('\r\n\r\n'), 15_000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    c.socket.destroy();
  });
});
