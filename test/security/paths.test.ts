// Path tricks: each is refused with 400, or treated exactly like its canonical spelling, and the
// path the gateway routed on is the path the registry receives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { rawTlsRequest } from '../helpers/raw-tls.js';
import { sleep } from '../helpers/wait.js';

const auth = basicAuthorization('alice', 'alice-secret');
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
  // A repository with one tag, so the canonical path answers 200.
  const config = Buffer.from('{}');
  const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(config).digest('hex')}`;
  const started = await stack.request('/v2/team/app/blobs/uploads/', { method: 'POST' });
  const location = String(started.headers.location);
  const put = await stack.request(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT', body: config });
  expect(put.status).toBe(201);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length }, layers: [] });
  const tagged = await stack.request('/v2/team/app/manifests/1.0', { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  expect(tagged.status).toBe(201);
});
afterAll(() => stack.stop());

/** Paths the registry was asked for, in order (from its access log). */
function upstreamPaths(): string[] {
  return [...stack.registry.log().matchAll(/"(?:GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/g)].map((m) => m[1]!);
}

async function get(path: string) {
  const before = upstreamPaths().length;
  const res = await rawTlsRequest(stack.gateway.port, stack.pki.caPem, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`);
  await sleep(100);
  return { ...res, upstream: upstreamPaths().slice(before) };
}

describe('request paths', () => {
  it('serves the canonical path (the baseline the tricks are compared with)', async () => {
    const res = await get('/v2/team/app/tags/list');
    expect(res.status).toBe(200);
    expect(res.text).toContain('"tags":["1.0"]');
    expect(res.upstream).toEqual(['/v2/team/app/tags/list']);
  });

  for (const [name, path] of [
    ['%61 for "a"', '/v2/te%61m/app/tags/list'],
    ['%5F for "_" (in a name that has none: not found, as canonically)', '/v2/te%5Fam/app/tags/list'],
    ['lower-case escapes', '/v2/t%65am/%61pp/tags/list'],
    ['an encoded /v2', '/%76%32/team/app/tags/list'],
  ] as const) {
    it(`treats ${name} exactly like the canonical path, and forwards that`, async () => {
      const canonical = decodeURIComponent(path);
      const viaTrick = await get(path);
      const direct = await get(canonical);
      expect(viaTrick.status).toBe(direct.status);
      expect(viaTrick.upstream).toEqual([canonical]);
    });
  }

  for (const [name, path] of [
    ['an encoded slash', '/v2/team%2Fapp/tags/list'],
    ['an encoded slash, lower case', '/v2/team%2fapp/tags/list'],
    ['a dot-dot segment', '/v2/other/../team/app/tags/list'],
    ['an encoded dot-dot and slash', '/v2/other/..%2Fteam/app/tags/list'],
    ['an encoded dot-dot segment', '/v2/other/%2e%2e/team/app/tags/list'],
    ['a dot segment', '/v2/./team/app/tags/list'],
    ['an empty segment', '/v2//team/app/tags/list'],
    ['an encoded backslash', '/v2/team%5Capp/tags/list'],
    ['an encoded NUL', '/v2/team%00/app/tags/list'],
    ['an encoded percent', '/v2/team%2561pp/tags/list'],
    ['an upper-case /V2/', '/V2/team/app/tags/list'],
  ] as const) {
    it(`refuses ${name} with 400, forwarding nothing`, async () => {
      const res = await get(path);
      expect(res.status).toBe(400);
      expect(res.upstream).toEqual([]);
    });
  }

  it('keeps the query byte for byte while canonicalizing the path', async () => {
    const res = await get('/v2/te%61m/app/tags/list?n=1&last=%30');
    expect(res.status).toBe(200);
    expect(res.upstream).toEqual(['/v2/team/app/tags/list?n=1&last=%30']);
  });
});
