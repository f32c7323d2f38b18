// The answer to a change (a push, a delete) is held until every process of a --workers gateway
// has dropped the repository's manifest copies: whole when it goes out, never written when the
// client left meanwhile, and a failure of the upstream answered the same way.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { routed } from '../../../src/registry/context.js';
import { forward, type ForwardState } from '../../../src/proxy/forward.js';
import { createManifestCache } from '../../../src/proxy/manifest-cache.js';
import { createReclaimer } from '../../../src/proxy/reclaim.js';
import { createUpstream } from '../../../src/proxy/upstream.js';
import { startFakeUpstream, type FakeUpstream } from '../../helpers/upstreams.js';
import { freePort } from '../../helpers/tools.js';

interface Announced {
  readonly repository: string;
  readonly dropped?: () => void;
}

interface Front {
  readonly url: string;
  /** Every onChange of the cache: the drop before forwarding (no callback), the one after the answer (with one). */
  readonly announced: Announced[];
  /** The state of each request forwarded, in order. */
  readonly states: ForwardState[];
  stop(): Promise<void>;
}

/** forward() behind a plain HTTP server, with a manifest cache whose other processes confirm only when told to. */
async function startFront(upstreamUrl: string): Promise<Front> {
  const announced: Announced[] = [];
  const states: ForwardState[] = [];
  const upstream = createUpstream(new URL(upstreamUrl), 10_000);
  const settings = {
    upstream,
    rewrite: { publicOrigin: null, upstreamOrigins: new Set([upstream.origin]) },
    challenge: 'Basic realm="test"',
    forwardedHost: 'gateway.test',
    log: pino({ level: 'silent' }),
    reclaim: createReclaimer(),
    manifests: createManifestCache({ ttlMs: 60_000, onChange: (repository, dropped) => void announced.push({ repository, dropped }) }),
  };
  const server = http.createServer((req, res) => {
    const state: ForwardState = { ...routed(req.method ?? 'GET', req.url ?? '/'), remoteAddress: '127.0.0.1', bytesIn: 0, bytesOut: 0, upstreamStatus: null, failure: null, cached: false };
    states.push(state);
    forward(req, res, state, settings);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    announced,
    states,
    stop: () =>
      new Promise<void>((resolve) => {
        upstream.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Answer {
  readonly status: number;
  readonly body: Buffer;
}

function send(url: string, method: string, path: string, body?: Buffer): { answer: Promise<Answer>; request: http.ClientRequest } {
  let request!: http.ClientRequest;
  const answer = new Promise<Answer>((resolve, reject) => {
    request = http.request(`${url}${path}`, { method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
  return { answer, request };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true, () => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

const MANIFEST = '/v2/team/app/manifests/latest';
const held = (front: Front) => front.announced.find((a) => a.dropped !== undefined);

describe('forward: the answer to a change waits for every process to drop its copies', () => {
  let upstream: FakeUpstream | null = null;
  let front: Front | null = null;
  afterEach(async () => {
    await front?.stop();
    await upstream?.stop();
    front = upstream = null;
  });

  it('holds a push\'s answer until the other processes confirm, then relays it whole', async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(201, { 'content-length': '7', 'docker-content-digest': 'sha256:x' }).end('created'));
    });
    front = await startFront(upstream.url);
    const { answer } = send(front.url, 'PUT', MANIFEST, Buffer.from('{}'));
    await until(() => held(front!) !== undefined);
    expect(front.announced.map((a) => [a.repository, a.dropped !== undefined])).toEqual([['team/app', false], ['team/app', true]]);
    expect(await settlesWithin(answer, 100)).toBe(false);
    held(front)!.dropped!();
    const res = await answer;
    expect(res.status).toBe(201);
    expect(res.body.toString()).toBe('created');
  });

  it('relays a long answer to a change whole once released', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(202, { 'content-length': String(big.length) }).end(big));
    });
    front = await startFront(upstream.url);
    const { answer } = send(front.url, 'PATCH', '/v2/team/app/blobs/uploads/abc', Buffer.alloc(1024));
    await until(() => held(front!) !== undefined);
    await new Promise((r) => setTimeout(r, 50)); // the upstream has sent what the socket takes
    held(front)!.dropped!();
    const res = await answer;
    expect(res.status).toBe(202);
    expect(res.body.equals(big)).toBe(true);
  });

  it('writes nothing when the client left while the answer was held, and lets the upstream response go', async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(202, { 'content-length': '2' }).end('ok'));
    });
    front = await startFront(upstream.url);
    const { answer, request } = send(front.url, 'DELETE', `/v2/team/app/manifests/sha256:${'a'.repeat(64)}`);
    await until(() => held(front!) !== undefined);
    request.destroy();
    await expect(answer).rejects.toThrow();
    await upstream.socketClosed(0);
    held(front)!.dropped!(); // late: nothing to answer, nothing thrown
    // The front still serves.
    const next = send(front.url, 'PUT', MANIFEST, Buffer.from('{}'));
    await until(() => front!.announced.filter((a) => a.dropped !== undefined).length === 2);
    front.announced.at(-1)!.dropped!();
    expect((await next.answer).status).toBe(202);
  });

  it('answers 502 after the drop when the upstream broke the held answer', async () => {
    upstream = await startFakeUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { 'content-length': '100' });
        res.write('short');
        setTimeout(() => res.socket?.destroy(), 20);
      });
    });
    front = await startFront(upstream.url);
    const { answer } = send(front.url, 'PUT', MANIFEST, Buffer.from('{}'));
    await until(() => held(front!) !== undefined);
    await upstream.socketClosed(0);
    expect(await settlesWithin(answer, 50)).toBe(false);
    held(front)!.dropped!();
    expect((await answer).status).toBe(502);
    expect(front.states[0]!.failure).toMatchObject({ kind: 'upstream-bad-response', detail: expect.stringMatching(/unusable upstream response/) });
  });

  it('answers an unreachable upstream after the drop too (the registry may have stored the push before failing)', async () => {
    front = await startFront(`http://127.0.0.1:${await freePort()}`);
    const { answer } = send(front.url, 'PUT', MANIFEST, Buffer.from('{}'));
    await until(() => held(front!) !== undefined);
    expect(await settlesWithin(answer, 50)).toBe(false);
    held(front)!.dropped!();
    expect((await answer).status).toBe(502);
  });

  it('does not hold reads', async () => {
    upstream = await startFakeUpstream((_req, res) => res.writeHead(200, { 'content-length': '2' }).end('{}'));
    front = await startFront(upstream.url);
    expect((await send(front.url, 'GET', MANIFEST).answer).status).toBe(200);
    expect((await send(front.url, 'GET', '/v2/team/app/tags/list').answer).status).toBe(200);
    expect(front.announced).toEqual([]);
  });
});
