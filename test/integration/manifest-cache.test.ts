// The manifest cache with the real registry behind the gateway: repeated manifest requests are
// answered from memory with the registry's exact answer; pushes and deletes through the gateway
// are seen at once; changes made straight at the registry within the TTL; requests that ask for
// something else (fresh, a range, a condition) always reach the registry; access rules still apply.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { header, makeImage, MEDIA_TYPES, pushBlobMonolithic, pushImage, repoName, sha256, type PushedImage } from '../helpers/registry-api.js';
import { eventually, sleep } from '../helpers/wait.js';

const accept = { accept: MEDIA_TYPES.manifest };

/** An image whose blobs are pushed (through the gateway) and whose manifest is not, yet. */
async function blobsOf(stack: TestStack, repo: string, label: string): Promise<ReturnType<typeof makeImage>> {
  const image = makeImage(label);
  await pushBlobMonolithic(stack, repo, image.config);
  await pushBlobMonolithic(stack, repo, image.layer);
  return image;
}

/** PUTs the manifest straight to the registry, behind the gateway's back; returns its digest. */
async function putBehindTheGateway(stack: TestStack, repo: string, tag: string, image: ReturnType<typeof makeImage>): Promise<string> {
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`${stack.registry.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', agent: false, headers: { 'content-type': MEDIA_TYPES.manifest } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end(image.manifestBytes);
  });
  expect(status).toBe(201);
  return sha256(image.manifestBytes);
}

function cacheHits(stack: TestStack, path: string): number {
  return stack.logLines().filter((l) => l.msg === 'request' && l.path === path && l.cache === 'hit').length;
}

describe('manifest cache (--manifest-cache-ttl 1)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ extraArgs: ['--manifest-cache-ttl', '1'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers a repeated GET from memory with the same bytes and headers, logged as a cache hit', async () => {
    const image = await pushImage(stack, repoName('cache/same'), 'v1');
    const path = `/v2/${image.repo}/manifests/v1`;
    const first = await stack.request(path, { headers: accept });
    const second = await stack.request(path, { headers: accept });
    for (const res of [first, second]) {
      expect(res.status).toBe(200);
      expect(res.body.equals(image.manifestBytes)).toBe(true);
    }
    for (const name of ['content-type', 'content-length', 'docker-content-digest', 'etag', 'docker-distribution-api-version', 'strict-transport-security']) {
      expect(header(second, name), name).toBe(header(first, name));
    }
    expect(header(second, 'date')).toBeTruthy();
    expect(await eventually(() => cacheHits(stack, path) === 1)).toBe(true);
  });

  it('answers a HEAD after a GET with the length and digest and no body', async () => {
    const image = await pushImage(stack, repoName('cache/head'), 'v1');
    const path = `/v2/${image.repo}/manifests/${image.manifestDigest}`;
    await stack.request(path, { headers: accept });
    const head = await stack.request(path, { method: 'HEAD', headers: accept });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(header(head, 'content-length'))).toBe(image.manifestBytes.length);
    expect(header(head, 'docker-content-digest')).toBe(image.manifestDigest);
    expect(await eventually(() => cacheHits(stack, path) === 1)).toBe(true);
  });

  it('gives a pull right after a push through the gateway the new manifest', async () => {
    const repo = repoName('cache/push');
    await pushImage(stack, repo, 'latest');
    const path = `/v2/${repo}/manifests/latest`;
    await stack.request(path, { headers: accept });
    await stack.request(path, { headers: accept }); // now certainly in memory
    const newer = await pushImage(stack, repo, 'latest');
    const after = await stack.request(path, { headers: accept });
    expect(after.status).toBe(200);
    expect(header(after, 'docker-content-digest')).toBe(newer.manifestDigest);
    expect(after.body.equals(newer.manifestBytes)).toBe(true);
  });

  it('sees a delete through the gateway at once', async () => {
    const image = await pushImage(stack, repoName('cache/delete'), 'v1');
    const path = `/v2/${image.repo}/manifests/${image.manifestDigest}`;
    expect((await stack.request(path, { headers: accept })).status).toBe(200);
    expect((await stack.request(path, { method: 'DELETE' })).status).toBe(202);
    expect((await stack.request(path, { headers: accept })).status).toBe(404);
  });

  it('shows a change made straight at the registry once the TTL has passed, and to a request for a fresh copy at once', async () => {
    const repo = repoName('cache/behind');
    const old: PushedImage = await pushImage(stack, repo, 'latest');
    const next = await blobsOf(stack, repo, 'behind');
    const path = `/v2/${repo}/manifests/latest`;
    await stack.request(path, { headers: accept });
    const changed = await putBehindTheGateway(stack, repo, 'latest', next);
    // Within the TTL the gateway's copy still answers...
    expect(header(await stack.request(path, { headers: accept }), 'docker-content-digest')).toBe(old.manifestDigest);
    // ...except to a client that asks for a fresh one,
    const fresh = await stack.request(path, { headers: { ...accept, 'cache-control': 'no-cache' } });
    expect(header(fresh, 'docker-content-digest')).toBe(changed);
    // and once the TTL has passed, to everyone.
    await sleep(1_100);
    expect(header(await stack.request(path, { headers: accept }), 'docker-content-digest')).toBe(changed);
  });

  it('sends conditional and range requests to the registry', async () => {
    const image = await pushImage(stack, repoName('cache/conditional'), 'v1');
    const path = `/v2/${image.repo}/manifests/v1`;
    await stack.request(path, { headers: accept });
    const notModified = await stack.request(path, { headers: { ...accept, 'if-none-match': `"${image.manifestDigest}"` } });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);
    const stale = await stack.request(path, { headers: { ...accept, 'if-none-match': '"sha256:0000"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(image.manifestBytes)).toBe(true);
    expect(cacheHits(stack, path)).toBe(0);
  });

  it('keeps answers for different Accept headers apart', async () => {
    const image = await pushImage(stack, repoName('cache/accept'), 'v1');
    const path = `/v2/${image.repo}/manifests/v1`;
    const oci = await stack.request(path, { headers: accept });
    const other = await stack.request(path, { headers: { accept: `${MEDIA_TYPES.manifest}, application/vnd.oci.image.index.v1+json` } });
    expect(oci.body.equals(image.manifestBytes)).toBe(true);
    expect(other.body.equals(image.manifestBytes)).toBe(true);
    expect(cacheHits(stack, path)).toBe(0);
  });

  it('never keeps blobs', async () => {
    const image = await pushImage(stack, repoName('cache/blob'), 'v1');
    const path = `/v2/${image.repo}/blobs/${image.configDigest}`;
    await stack.request(path);
    const again = await stack.request(path);
    expect(again.body.equals(image.config)).toBe(true);
    expect(cacheHits(stack, path)).toBe(0);
  });
});

describe('manifest cache and access control', () => {
  let stack: TestStack;
  let dir: string;
  const bob: HtpasswdUser = { user: 'bob', password: 'bob-secret', algorithm: 'bcrypt', cost: 4 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rgw-cache-access-'));
    const file = join(dir, 'access.yml');
    await writeFile(file, 'rules:\n  - users: [alice]\n    repositories: ["*"]\n    actions: [pull, push]\n  - users: [bob]\n    repositories: ["bob/*"]\n    actions: [pull]\n');
    stack = await startTestStack({ users: [bob], extraArgs: ['--access', file] });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a user the rules refuse, even a manifest another user has just been answered', async () => {
    const image = await pushImage(stack, 'team/secret', 'v1');
    const path = `/v2/${image.repo}/manifests/v1`;
    expect((await stack.request(path, { headers: accept })).status).toBe(200);
    const refused = await stack.request(path, { headers: accept, auth: 'bob' });
    expect(refused.status).toBe(403);
    expect(refused.text).not.toContain(image.manifestDigest);
  });
});

describe('manifest cache off (--manifest-cache-ttl 0)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ extraArgs: ['--manifest-cache-ttl', '0'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('sends every GET to the registry: a change behind the gateway shows at once', async () => {
    const repo = repoName('nocache/behind');
    await pushImage(stack, repo, 'latest');
    const next = await blobsOf(stack, repo, 'behind');
    const path = `/v2/${repo}/manifests/latest`;
    await stack.request(path, { headers: accept });
    const changed = await putBehindTheGateway(stack, repo, 'latest', next);
    expect(header(await stack.request(path, { headers: accept }), 'docker-content-digest')).toBe(changed);
    expect(cacheHits(stack, path)).toBe(0);
  });
});
