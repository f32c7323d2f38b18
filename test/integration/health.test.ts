// Health endpoints answer without credentials; nothing outside the registry API is served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { eventually } from '../helpers/wait.js';
import { warnAboutUpstream } from '../../src/server/health.js';
import { createLogger } from '../../src/server/logger.js';

describe('health endpoints and paths outside /v2/', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers /healthz with 200 {"status":"ok"} without credentials', async () => {
    const res = await stack.request('/healthz', { auth: false });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(res.text)).toEqual({ status: 'ok' });
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('answers /healthz the same with credentials, and ignores a query string', async () => {
    const res = await stack.request('/healthz?probe=1');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ status: 'ok' });
  });

  it('answers /readyz with 200 without credentials while the registry is up', async () => {
    const res = await stack.request('/readyz', { auth: false });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ status: 'ready' });
  });

  it('says nothing about a registry without auth of its own, at start or when it answers', async () => {
    const lines: string[] = [];
    await warnAboutUpstream(new URL(stack.registry.url), createLogger('debug', { write: (chunk: string) => void lines.push(chunk) }));
    expect(lines).toEqual([]);
    expect((await stack.request('/v2/')).status).toBe(200);
    expect((await stack.request('/v2/absent/app/tags/list')).status).toBe(404);
    const about = stack.logLines().filter((l) => /own login|401 itself|not reachable/.test(String(l.msg)));
    expect(about).toEqual([]);
  });

  it('answers / with the web UI (its sign-in), never the registry\'s own 200', async () => {
    const res = await stack.request('/', { auth: false });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/ui/login?next=%2F');
    expect(res.headers['docker-distribution-api-version']).toBeUndefined();
  });

  // The registry itself answers 200 on `/`: a 404 here shows the gateway did not forward it.
  const outside = ['/v1/_ping', '/v2x', '/v20/', '/healthz/extra', '/metrics', '/debug/vars', '/favicon.ico'];
  for (const path of outside) {
    it(`answers ${path} with 404, with or without credentials`, async () => {
      const anonymous = await stack.request(path, { auth: false });
      expect(anonymous.status).toBe(404);
      expect(anonymous.headers['www-authenticate']).toBeUndefined();
      const authenticated = await stack.request(path);
      expect(authenticated.status).toBe(404);
      expect(authenticated.headers['docker-distribution-api-version']).toBeUndefined();
    });
  }

  // Spellings a registry could take for /v2/: refused outright rather than "not found".
  for (const path of ['/V2/', '/%2Fv2/']) {
    it(`refuses ${path} with 400, with or without credentials`, async () => {
      expect((await stack.request(path, { auth: false })).status).toBe(400);
      expect((await stack.request(path)).status).toBe(400);
    });
  }

  it('does not forward paths outside /v2/ to the registry, which would have answered them', async () => {
    const direct = await fetch(`${stack.registry.url}/`);
    expect(direct.status).toBe(200);
    const marker = `outside-${Date.now()}`;
    expect((await stack.request(`/${marker}`)).status).toBe(404);
    expect((await stack.request(`/v2/${marker}/tags/list`)).status).toBe(404); // the registry's NAME_UNKNOWN
    expect(await eventually(() => stack.registry.log().includes(`/v2/${marker}/tags/list`))).toBe(true);
    expect(stack.registry.log().split(`/v2/${marker}`).join('')).not.toContain(`/${marker}`);
  });
});
