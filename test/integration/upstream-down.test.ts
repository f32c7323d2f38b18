// The registry goes away and comes back while the gateway keeps running.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { API_VERSION, eventually, header, pushBlobMonolithic, randomBlob, sha256 } from './registry-api.js';

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
    expect(res.text).not.toContain(stack.registry.url);
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

  it('is not ready (503, naming the reason) while alive (200)', async () => {
    const ready = await stack.request('/readyz', { auth: false });
    expect(ready.status).toBe(503);
    const body = JSON.parse(ready.text) as { status: string; reason: string };
    expect(body.status).not.toBe('ready');
    expect(body.reason).toContain(stack.registry.url);
    expect(body.reason).toMatch(/ECONNREFUSED|unreachable/);
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
