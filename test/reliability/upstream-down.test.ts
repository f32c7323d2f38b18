// An upstream that is down, refuses, or says nothing: the client gets 502 at once, or 504 at
// --upstream-timeout, as a registry-style error that gives away nothing of the inside (no stack
// frame, no upstream address); the process keeps serving through 10,000 of them, in bounded
// memory and descriptors, and serves again as soon as the registry is back.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { spawnGateway, type GatewayWithUser } from '../helpers/gateway-process.js';
import { freePort } from '../helpers/tools.js';
import { API_VERSION, header, pushBlobMonolithic, randomBlob, sha256 } from '../helpers/registry-api.js';
import { startBlackhole, startRawUpstream, startSilentUpstream } from '../helpers/upstreams.js';
import { eventually } from '../helpers/wait.js';

/** An error body a client may see: the registry's error format, and nothing of the gateway's inside. */
function expectNoInternals(body: string, upstreamUrl: string): void {
  const { host, port } = new URL(upstreamUrl);
  expect(body).not.toMatch(/\bat \S+ \(|\bat (node:|file:|\/)/); // stack frames
  expect(body).not.toMatch(/node:internal|\/work\/|\/src\/|\/dist\/|\.[jt]s:\d+/); // source files
  expect(body).not.toContain(host);
  expect(body).not.toMatch(new RegExp(`:${port}\\b`));
  expect(body).not.toMatch(/localhost|127\.0\.0\.1|\[::1\]|::ffff:/); // internal names
}

describe('upstream registry down, then back on the same port', () => {
  let stack: TestStack;
  const blob = randomBlob(2_000);

  beforeAll(async () => {
    stack = await startTestStack();
    await pushBlobMonolithic(stack, 'down/app', blob);
    // Requests while it was up leave kept-alive connections in the gateway's upstream pool.
    expect((await stack.request('/v2/')).status).toBe(200);
    expect((await stack.request('/readyz')).status).toBe(200);
    await stack.registry.halt();
    stack.clearLogs();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers /v2/ with 502 and a registry-style UNAVAILABLE error', async () => {
    const res = await stack.request('/v2/');
    expect(res.status).toBe(502);
    expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
    expect(header(res, 'content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(res.text) as { errors: Array<{ code: string; message: string }> };
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]!.code).toBe('UNAVAILABLE');
    expect(body.errors[0]!.message).toEqual(expect.any(String));
    expect(body.errors[0]!.message.length).toBeGreaterThan(0);
    // The client is not told where the upstream lives.
    expectNoInternals(res.text, stack.registry.url);
  });

  it('answers blob reads and uploads with 502 too', async () => {
    const get = await stack.request(`/v2/down/app/blobs/${sha256(blob)}`);
    expect(get.status).toBe(502);
    expect(JSON.parse(get.text).errors[0].code).toBe('UNAVAILABLE');
    const post = await stack.request('/v2/down/app/blobs/uploads/', { method: 'POST', body: randomBlob(4_000) });
    expect(post.status).toBe(502);
    expect(JSON.parse(post.text).errors[0].code).toBe('UNAVAILABLE');
  });

  it('still checks credentials first: no credentials is 401, not 502', async () => {
    const res = await stack.request('/v2/', { auth: false });
    expect(res.status).toBe(401);
  });

  it('logs an error naming the upstream', async () => {
    stack.clearLogs();
    expect((await stack.request('/v2/')).status).toBe(502);
    expect(await eventually(() => stack.logLines().some((l) => l.msg !== 'request' && JSON.stringify(l).includes(stack.registry.url)))).toBe(true);
    const line = stack.logLines().find((l) => l.msg !== 'request' && JSON.stringify(l).includes(stack.registry.url))!;
    expect(line.level).toBeGreaterThanOrEqual(50); // pino: 50 is error
  });

  it('is not ready (503, naming the reason but not the upstream address) while alive (200)', async () => {
    const ready = await stack.request('/readyz', { auth: false });
    expect(ready.status).toBe(503);
    const body = JSON.parse(ready.text) as { status: string; reason: string };
    expect(body.status).not.toBe('ready');
    expect(body.reason).toMatch(/ECONNREFUSED|unreachable/);
    expectNoInternals(ready.text, stack.registry.url);
    const alive = await stack.request('/healthz', { auth: false });
    expect(alive.status).toBe(200);
    expect(JSON.parse(alive.text)).toEqual({ status: 'ok' });
  });

  it('serves again once the registry is back, without a gateway restart', async () => {
    await stack.registry.start();
    const res = await stack.request('/v2/');
    expect(res.status).toBe(200);
    expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
    const ready = await stack.request('/readyz', { auth: false });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ status: 'ready' });
    const get = await stack.request(`/v2/down/app/blobs/${sha256(blob)}`);
    expect(get.status).toBe(200);
    expect(get.body.equals(blob)).toBe(true);
  });
});

const BAD_GATEWAY = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'upstream registry unavailable', detail: null }] });
const GATEWAY_TIMEOUT = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'upstream registry timed out', detail: null }] });

interface Answer {
  status: number;
  body: string;
  elapsedMs: number;
}

function get(gateway: GatewayWithUser, path: string, agent: https.Agent | false = false, method = 'GET', body?: Buffer): Promise<Answer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: gateway.port, path, method, ca: gateway.pki.caPem, servername: 'localhost', agent, headers: { authorization: gateway.authorization } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, elapsedMs: Date.now() - started }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('an upstream that refuses or stays silent', () => {
  let gateway: GatewayWithUser | null = null;
  afterAll(async () => {
    await gateway?.stop();
  });
  const restart = async (upstreamUrl: string, timeoutSeconds: number) => {
    await gateway?.stop();
    gateway = await spawnGateway(upstreamUrl, ['--upstream-timeout', String(timeoutSeconds)]);
    return gateway;
  };

  it('answers 502 in under a second when the upstream refuses the connection', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const gw = await restart(url, 300);
    const answer = await get(gw, '/v2/team/app/manifests/latest');
    expect(answer.status).toBe(502);
    expect(answer.elapsedMs).toBeLessThan(1_000);
    expect(answer.body).toBe(BAD_GATEWAY);
    expectNoInternals(answer.body, url);
  });

  it('keeps the client connection open after an upstream error, so a retry costs no new handshake', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const gw = await restart(url, 300);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      agent.on('free', (socket) => sockets.add(socket));
      for (let i = 0; i < 3; i++) expect((await get(gw, '/v2/', agent)).status).toBe(502);
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('answers 504 at --upstream-timeout when the upstream accepts the connection and never answers', async () => {
    const silent = await startSilentUpstream();
    try {
      const gw = await restart(silent.url, 1.5);
      const answer = await get(gw, '/v2/team/app/blobs/sha256:00');
      expect(answer.status).toBe(504);
      expect(answer.elapsedMs).toBeGreaterThanOrEqual(1_450);
      expect(answer.elapsedMs).toBeLessThan(3_500);
      expect(answer.body).toBe(GATEWAY_TIMEOUT);
      expectNoInternals(answer.body, silent.url);
    } finally {
      await silent.stop();
    }
  });

  it('answers 504 at --upstream-timeout when the upstream never completes the TCP handshake', async () => {
    const blackhole = await startBlackhole();
    try {
      const gw = await restart(blackhole.url, 1.5);
      const answer = await get(gw, '/v2/');
      expect(answer.status).toBe(504);
      expect(answer.elapsedMs).toBeGreaterThanOrEqual(1_450);
      expect(answer.elapsedMs).toBeLessThan(3_500);
      expect(answer.body).toBe(GATEWAY_TIMEOUT);
      expectNoInternals(answer.body, blackhole.url);
    } finally {
      blackhole.stop();
    }
  });

  it('keeps serving after 10,000 refused and silent requests, in bounded memory and descriptors, with a clean error body each time', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const gw = await restart(url, 0.2);
    const baselineFds = gw.fdCount();
    const agent = new https.Agent({ keepAlive: true, maxSockets: 100 });
    // Phases of 1,000 requests, nothing listening on the upstream port and a silent server on it in
    // turn; in each, GETs, HEADs and small uploads from 100 keep-alive connections at once.
    const requests: Array<[string, Buffer | undefined]> = [
      ['GET', undefined],
      ['HEAD', undefined],
      ['PUT', Buffer.alloc(1_000, 1)],
      ['POST', Buffer.alloc(10, 2)],
    ];
    const statuses = new Map<number, number>();
    const rssByPhase: number[] = [];
    for (let phase = 0; phase < 10; phase++) {
      const silent = phase % 2 === 1 ? await startSilentUpstream(port) : null;
      let next = 0;
      const client = async () => {
        while (next < 1_000) {
          const [method, body] = requests[next++ % requests.length]!;
          const answer = await get(gw, `/v2/load/app/blobs/sha256:${phase}${next}`, agent, method, body);
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          if (method === 'HEAD') continue;
          expect([BAD_GATEWAY, GATEWAY_TIMEOUT]).toContain(answer.body);
          expectNoInternals(answer.body, url);
        }
      };
      await Promise.all(Array.from({ length: 100 }, client));
      await silent?.stop();
      rssByPhase.push(gw.rssBytes());
    }
    // Every one was an upstream error, of both kinds.
    expect([...statuses.keys()].sort()).toEqual([502, 504]);
    expect((statuses.get(502) ?? 0) + (statuses.get(504) ?? 0)).toBe(10_000);
    expect(statuses.get(504)).toBeGreaterThan(4_000);
    // Memory rises and falls with garbage collection (by tens of MiB on Node 26): a leak shows as the
    // second 5,000 errors reaching well above the peak of the first 5,000.
    const peak = (phases: number[]) => Math.max(...phases);
    expect(peak(rssByPhase.slice(5)) - peak(rssByPhase.slice(0, 5))).toBeLessThan(24 * 1024 * 1024);
    agent.destroy();
    let fds = gw.fdCount();
    await eventually(() => (fds = gw.fdCount()) <= baselineFds, 3_000, 50);
    expect(fds).toBeLessThanOrEqual(baselineFds);

    // The same process serves as soon as the upstream answers again.
    const healthy = await startRawUpstream(({ socket }) =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'), port);
    try {
      const answer = await get(gw, '/v2/');
      expect(answer).toMatchObject({ status: 200, body: '{}' });
      expect(gw.alive()).toBe(true);
    } finally {
      await healthy.stop();
    }
  }, 120_000);
});
