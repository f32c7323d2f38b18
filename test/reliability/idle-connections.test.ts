// --max-connections (security suite, item 13): a flood of idle connections never pushes the gateway
// past its limit, and never keeps health checks or real clients out: the longest-idle connection
// makes way for each new one. Only connections busy with a request are safe from that; when all
// are busy, a few more get in for /healthz and /readyz alone, and beyond those a new connection is
// refused before its handshake.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { spawnCli } from '../helpers/gateway-process.js';
import { freePort } from '../helpers/tools.js';
import { eventually, sleep } from '../helpers/wait.js';
import { HEALTH_RESERVE } from '../../src/server/connection-limit.js';

const MAX = 4;

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ extraArgs: ['--max-connections', String(MAX)] });
});
afterAll(() => stack.stop());

interface Client {
  readonly socket: tls.TLSSocket;
  /** Set once the gateway (or anyone) closed the connection. */
  closed: boolean;
  /** Everything received, as latin1. */
  received: string;
}

/** A TLS connection that has finished its handshake and sends nothing: an idle client. */
function openClient(port = stack.gateway.port): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: stack.pki.caPem, servername: 'localhost' });
    const client: Client = { socket, closed: false, received: '' };
    socket.on('data', (c: Buffer) => (client.received += c.toString('latin1')));
    socket.on('close', () => (client.closed = true));
    socket.once('secureConnect', () => resolve(client));
    socket.once('error', reject);
    socket.on('error', () => undefined);
  });
}


/**
 * An upload whose body is half sent: a connection busy with a request until the rest comes. Started
 * on the same connection, so no other connection of the test is still closing when it is counted.
 */
async function busyUpload(): Promise<{ client: Client; finish(): Promise<string> }> {
  const client = await openClient();
  const auth = `Host: localhost\r\nAuthorization: ${stack.authorization()}\r\n`;
  client.socket.write(`POST /v2/idle/busy/blobs/uploads/ HTTP/1.1\r\n${auth}Content-Length: 0\r\n\r\n`);
  expect(await eventually(() => client.received.includes('\r\n\r\n'), 5_000, 20)).toBe(true);
  expect(client.received).toMatch(/^HTTP\/1\.1 202 /);
  const location = /\r\nlocation: ([^\r]+)/i.exec(client.received)![1]!;
  client.received = '';
  // 100 Continue comes once the gateway has taken the request on: from then on the connection is busy.
  client.socket.write(`PATCH ${location} HTTP/1.1\r\n${auth}Content-Type: application/octet-stream\r\nContent-Length: 8\r\nExpect: 100-continue\r\n\r\n`);
  expect(await eventually(() => client.received.includes('\r\n\r\n'), 5_000, 20)).toBe(true);
  expect(client.received).toMatch(/^HTTP\/1\.1 100 /);
  client.received = '';
  client.socket.write('abcd');
  return {
    client,
    async finish() {
      client.socket.write('efgh');
      await eventually(() => client.received.includes('\r\n\r\n'), 5_000, 20);
      return client.received;
    },
  };
}

/** One after another: a connection opened while all are busy would land in the health reserve. */
async function busyUploads(count: number): Promise<Array<Awaited<ReturnType<typeof busyUpload>>>> {
  const uploads = [];
  for (let i = 0; i < count; i++) uploads.push(await busyUpload());
  return uploads;
}

/** GET `path` on a new keep-alive connection, without credentials; resolves once the answer is in. */
async function ask(path: string, port = stack.gateway.port): Promise<Client> {
  const client = await openClient(port);
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  expect(await eventually(() => /\r\n\r\n\{.*\}/s.test(client.received), 5_000, 20)).toBe(true);
  return client;
}

const closeAll = (clients: readonly Client[]) => clients.forEach((c) => c.socket.destroy());

describe('idle connections beyond --max-connections', () => {
  it('close the longest-idle connections first: the gateway never holds more than the limit', async () => {
    const clients: Client[] = [];
    try {
      for (let i = 0; i < MAX * 4; i++) clients.push(await openClient());
      // Each of the last MAX took the place of one opened before it.
      expect(await eventually(() => clients.filter((c) => c.closed).length >= MAX * 3, 5_000, 20)).toBe(true);
      await sleep(200);
      expect(clients.map((c) => c.closed)).toEqual([...Array<boolean>(MAX * 3).fill(true), ...Array<boolean>(MAX).fill(false)]);
      // Closed without a word: an idle connection has no request to answer.
      expect(clients.every((c) => c.received === '')).toBe(true);
    } finally {
      closeAll(clients);
    }
  });

  it('never keep /healthz or a registry client out, and normal requests work once they are gone', async () => {
    const clients: Client[] = [];
    try {
      for (let i = 0; i < MAX * 2; i++) clients.push(await openClient());
      const health = await ask('/healthz');
      clients.push(health);
      expect(health.received).toMatch(/^HTTP\/1\.1 200 /);
      // An ordinary connection, kept alive: it took the place of an idle one.
      expect(health.received).toMatch(/\r\nconnection: keep-alive\r\n/i);
      expect((await stack.request('/v2/')).status).toBe(200);
    } finally {
      closeAll(clients);
    }
    for (let i = 0; i < 3; i++) expect((await stack.request('/v2/')).status).toBe(200);
  });

  it('leave a connection busy with a request alone, however many idle ones arrive', async () => {
    const upload = await busyUpload();
    const idle: Client[] = [];
    try {
      for (let i = 0; i < MAX * 3; i++) idle.push(await openClient());
      expect(await eventually(() => idle.filter((c) => c.closed).length >= MAX * 3 - (MAX - 1), 5_000, 20)).toBe(true);
      expect(upload.client.closed).toBe(false);
      expect(await upload.finish()).toMatch(/^HTTP\/1\.1 202 /);
    } finally {
      closeAll([...idle, upload.client]);
    }
  });
});

describe('when every connection is busy', () => {
  it('answers /healthz and /readyz, tells registry clients 503 with Retry-After, and lets the busy ones finish', async () => {
    const uploads = await busyUploads(MAX);
    try {
      const health = await ask('/healthz');
      expect(health.received).toMatch(/^HTTP\/1\.1 200 /);
      // From the reserve: one answer, then the connection is closed.
      expect(health.received).toMatch(/\r\nconnection: close\r\n/i);
      expect(await eventually(() => health.closed, 5_000, 20)).toBe(true);
      expect((await stack.request('/readyz', { auth: false })).status).toBe(200);
      const refused = await stack.request('/v2/');
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.headers['strict-transport-security']).toBe('max-age=31536000');
      expect(JSON.parse(refused.text)).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
      expect(refused.text).toContain('--max-connections');
      for (const upload of uploads) expect(await upload.finish()).toMatch(/^HTTP\/1\.1 202 /);
    } finally {
      closeAll(uploads.map((u) => u.client));
    }
    expect((await stack.request('/v2/')).status).toBe(200);
    const warning = stack.logLines().find((l) => String(l.msg).includes('--max-connections'));
    expect(warning).toMatchObject({ level: 40, maxConnections: MAX });
  });

  it('refuses a new connection before its handshake once the health reserve is busy too', async () => {
    const uploads = await busyUploads(MAX);
    // With the registry frozen, each /readyz waits up to 5 s for it: the reserve stays busy.
    stack.registry.freeze();
    const readiness: Client[] = [];
    try {
      // A reserve connection is idle until the gateway has read its request, and an idle one makes
      // way for the next: open more until the whole reserve holds a waiting /readyz.
      const waiting = () => readiness.filter((c) => !c.closed).length;
      for (let i = 0; i < HEALTH_RESERVE * 4 && waiting() < HEALTH_RESERVE; i++) {
        const client = await openClient();
        client.socket.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n');
        readiness.push(client);
        await sleep(50);
      }
      await sleep(200);
      expect(waiting()).toBe(HEALTH_RESERVE);
      const start = Date.now();
      await expect(openClient()).rejects.toThrow(/ECONNRESET|socket disconnected|socket hang up/i);
      expect(Date.now() - start).toBeLessThan(2_000);
    } finally {
      stack.registry.thaw();
      closeAll([...readiness, ...uploads.map((u) => u.client)]);
    }
    // Once the readiness checks are answered (the registry is back) their places are free again.
    const healthy = async () => (await stack.request('/healthz', { auth: false }).catch(() => null))?.status === 200;
    await eventually(healthy, 10_000, 200);
    expect(await healthy()).toBe(true);
  });
});

describe('with --workers 2', () => {
  it('each process holds at most --max-connections idle ones, and /healthz still answers', async () => {
    const port = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert,
      '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile, '--workers', '2', '--max-connections', String(MAX)];
    const gateway = spawnCli(args, { stdin: 'ignore' });
    const clients: Client[] = [];
    try {
      const started = await eventually(() => openClient(port).then((c) => (c.socket.destroy(), true), () => false), 15_000, 100);
      expect(started).toBe(true);
      for (let i = 0; i < MAX * 10; i++) clients.push(await openClient(port));
      await sleep(500);
      const open = clients.filter((c) => !c.closed).length;
      expect(open).toBeGreaterThanOrEqual(MAX);
      expect(open).toBeLessThanOrEqual(2 * MAX);
      const health = await ask('/healthz', port);
      clients.push(health);
      expect(health.received).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      closeAll(clients);
      await gateway.kill();
    }
  });
});
