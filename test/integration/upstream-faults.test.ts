// Faults a real registry cannot be made to produce on demand: an upstream that resets mid-body, and
// clients that go away. A fake upstream stands in for those only. (An upstream that is down or
// silent: test/reliability/upstream-down.test.ts.)
import https from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/upstreams.js';
import { eventually, eventuallyValue } from '../helpers/wait.js';

interface Outcome {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  received: number;
  /** 'end' when the body completed normally, 'error' when the transfer broke. */
  ending: 'end' | 'error';
  body: string;
  elapsedMs: number;
}

function requestThrough(
  gw: TestStack,
  path: string,
  options: { method?: string; body?: (req: import('node:http').ClientRequest) => void; auth?: boolean } = {},
): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, gw.gateway.url), {
      method: options.method ?? 'GET',
      ca: gw.pki.caPem,
      agent: false,
      headers: options.auth === false ? {} : { authorization: gw.authorization() },
    });
    req.on('response', (res) => {
      let received = 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (chunks.length < 16) chunks.push(c);
      });
      const settle = (ending: 'end' | 'error') => () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, received, ending, body: Buffer.concat(chunks).toString(), elapsedMs: Date.now() - started });
      res.on('end', settle('end'));
      res.on('error', settle('error'));
      res.on('aborted', settle('error'));
    });
    req.on('error', reject);
    if (options.body) options.body(req);
    else req.end();
  });
}

let upstream: FakeUpstream | null = null;
let gw: TestStack | null = null;
afterEach(async () => {
  await gw?.stop();
  await upstream?.stop();
  gw = null;
  upstream = null;
});

/** The access-log line of the one request made, once the gateway has written it. */
function accessLine(gateway: TestStack): Promise<Record<string, unknown> | undefined> {
  return eventuallyValue(() => gateway.logLines().find((l) => l.msg === 'request'), 1_000, 10);
}

// What the client sees of each kind of break is in test/reliability/truncation.test.ts; here, the log.
describe('an upstream that breaks mid-body', () => {
  it('logs the download as not completed, after breaking the client connection before the advertised length', async () => {
    upstream = await startFakeUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '1000000', 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(64 * 1024, 1), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    gw = await startTestStack({ upstream: upstream.url });
    const outcome = await requestThrough(gw, '/v2/a/blobs/sha256:00');
    expect(outcome.status).toBe(200);
    expect(outcome.ending).toBe('error');
    expect(outcome.received).toBeLessThan(1_000_000);
    expect(outcome.elapsedMs).toBeLessThan(1000);
    expect(await accessLine(gw)).toMatchObject({ status: 200, completed: false, failure: expect.stringMatching(/^response interrupted: the upstream closed/) });
  });
});

describe('a client that goes away', () => {
  it('closes the upstream request of an aborted download within a second', async () => {
    upstream = await startFakeUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': String(1024 * 1024 * 1024) });
      const chunk = Buffer.alloc(64 * 1024, 3);
      const pump = () => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      res.on('error', () => undefined);
      pump();
    });
    gw = await startTestStack({ upstream: upstream.url });
    const closed = new Promise<number>((resolve, reject) => {
      const req = https.request(new URL('/v2/a/blobs/sha256:big', gw!.gateway.url), {
        ca: gw!.pki.caPem,
        agent: false,
        headers: { authorization: gw!.authorization() },
      });
      req.on('response', (res) => {
        res.once('data', () => {
          req.destroy();
          const abortedAt = Date.now();
          upstream!.socketClosed(0).then(() => resolve(Date.now() - abortedAt), reject);
        });
      });
      req.on('error', () => undefined);
      req.end();
    });
    expect(await closed).toBeLessThan(1000);
    // The client's leaving, not blamed on the upstream (nor counted as an upstream error).
    expect(await accessLine(gw)).toMatchObject({ completed: false, failure: 'connection closed before the end of the response' });
  });

  it('closes the upstream request when the client leaves while the upstream is still thinking', async () => {
    upstream = await startFakeUpstream(() => undefined);
    gw = await startTestStack({ upstream: upstream.url });
    const req = https.request(new URL('/v2/a/manifests/latest', gw.gateway.url), {
      ca: gw.pki.caPem,
      agent: false,
      headers: { authorization: gw.authorization() },
    });
    req.on('error', () => undefined);
    req.end();
    await eventually(() => upstream!.requests.length > 0, 30_000, 10);
    const abortedAt = Date.now();
    req.destroy();
    await upstream.socketClosed(0);
    expect(Date.now() - abortedAt).toBeLessThan(1000);
  });
});
