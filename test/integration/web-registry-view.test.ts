// The web UI's view of the registry (src/web/registry-view.ts) against the real registry
// (Debian's docker-registry, distribution 2.8): images and a multi-platform index pushed straight
// to it, then listed, described and deleted through the module, as the UI's pages will.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstream, type Upstream } from '../../src/proxy/upstream.js';
import {
  deleteReference,
  describeTag,
  describeTags,
  listRepositories,
  listTags,
  resolveDigest,
  tagsPointingAt,
  UpstreamViewError,
} from '../../src/web/registry-view.js';
import { gzipLayer, makeTar, MEDIA_TYPES, sha256 } from '../helpers/oci-layout.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { freePort } from '../helpers/tools.js';

// --- pushing straight to the registry (no gateway in between) --------------------------------

async function pushBlob(registry: TestRegistry, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const started = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(started.status, await started.text()).toBe(202);
  const location = new URL(started.headers.get('location')!, registry.url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream' } });
  expect(put.status, await put.text()).toBe(201);
  return digest;
}

async function putManifest(registry: TestRegistry, repo: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': mediaType } });
  expect(res.status, await res.text()).toBe(201);
  return res.headers.get('docker-content-digest')!;
}

interface Pushed {
  readonly digest: string;
  readonly bytes: Buffer;
  /** Config plus layers, as the manifest declares them. */
  readonly size: number;
  readonly created: string;
  readonly configDigest: string;
}

/** An image of `layerCount` real gzip'd tar layers; pushed, and tagged `tags` (the first by PUT, the others too). */
async function pushImage(
  registry: TestRegistry,
  repo: string,
  tags: readonly string[],
  options: { os?: string; architecture?: string; variant?: string; created?: string; layerCount?: number; configPadding?: number } = {},
): Promise<Pushed> {
  const created = options.created ?? '2024-05-06T07:08:09.123456789Z';
  const layers = Array.from({ length: options.layerCount ?? 2 }, (_, i) => {
    const tar = makeTar({ [`srv/file-${i}.bin`]: randomBytes(2000 + i * 1000) });
    return { tar, blob: gzipLayer(tar) };
  });
  const config = Buffer.from(
    JSON.stringify({
      created,
      architecture: options.architecture ?? 'amd64',
      os: options.os ?? 'linux',
      ...(options.variant === undefined ? {} : { variant: options.variant }),
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l.tar)) },
      config: {},
      // Makes the config blob as large as a test needs (bounds on reading it).
      padding: 'x'.repeat(options.configPadding ?? 0),
    }),
  );
  const configDigest = await pushBlob(registry, repo, config);
  for (const layer of layers) await pushBlob(registry, repo, layer.blob);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.layerGzip, digest: sha256(l.blob), size: l.blob.length })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  let digest = sha256(bytes);
  // Untagged (a platform of an index) when no tags are given.
  for (const tag of tags.length === 0 ? [digest] : tags) digest = await putManifest(registry, repo, tag, MEDIA_TYPES.manifest, bytes);
  expect(digest).toBe(sha256(bytes));
  return { digest, bytes, size: config.length + layers.reduce((sum, l) => sum + l.blob.length, 0), created, configDigest };
}

// --- the registry's content ------------------------------------------------------------------

describe('web UI registry view against the real registry', () => {
  let registry: TestRegistry;
  let upstream: Upstream;
  let single: Pushed;
  let amd64: Pushed;
  let arm64: Pushed;
  let indexDigest: string;
  const hidden = (name: string): boolean => name.startsWith('secret/');

  beforeAll(async () => {
    registry = await startRegistry();
    upstream = createUpstream(new URL(registry.url), 5_000);
    single = await pushImage(registry, 'web/alpha', ['v1', 'v2', 'latest']);
    await pushImage(registry, 'web/alpha', ['v3'], { created: '2023-01-02T03:04:05Z' });
    for (const repo of ['web/bravo', 'web/charlie', 'other/delta', 'secret/echo', 'secret/foxtrot', 'web/golf']) await pushImage(registry, repo, ['v1'], { layerCount: 1 });

    // Two platforms and an attestation manifest (platform unknown/unknown), as buildx pushes them.
    amd64 = await pushImage(registry, 'web/multi', [], { created: '2024-02-03T04:05:06Z' });
    arm64 = await pushImage(registry, 'web/multi', [], { architecture: 'arm64', variant: 'v8', layerCount: 3, created: '2024-02-03T04:05:07Z' });
    const attestation = await pushImage(registry, 'web/multi', [], { os: 'unknown', architecture: 'unknown', layerCount: 1 });
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.index,
      manifests: [
        { mediaType: MEDIA_TYPES.manifest, digest: amd64.digest, size: amd64.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MEDIA_TYPES.manifest, digest: arm64.digest, size: arm64.bytes.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        {
          mediaType: MEDIA_TYPES.manifest,
          digest: attestation.digest,
          size: attestation.bytes.length,
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': amd64.digest },
        },
      ],
    };
    indexDigest = await putManifest(registry, 'web/multi', 'stable', MEDIA_TYPES.index, Buffer.from(JSON.stringify(index)));
  });

  afterAll(async () => {
    upstream?.close();
    await registry?.stop();
  });

  describe('listRepositories', () => {
    const all = { allowed: (name: string) => !hidden(name), query: '', after: null, limit: 100 };

    it('lists the repositories allowed, sorted, without a next page when all fit', async () => {
      const page = await listRepositories(upstream, all);
      expect(page.items).toEqual(['other/delta', 'web/alpha', 'web/bravo', 'web/charlie', 'web/golf', 'web/multi']);
      expect(page.next).toBeNull();
    });

    it('filters by a query, case-insensitively', async () => {
      expect((await listRepositories(upstream, { ...all, query: 'ALP' })).items).toEqual(['web/alpha']);
      expect((await listRepositories(upstream, { ...all, query: 'secret' })).items).toEqual([]);
      expect((await listRepositories(upstream, { ...all, query: 'nothing-like-this' })).items).toEqual([]);
    });

    it('pages with a cursor that is the last name shown, never a hidden one', async () => {
      const seen: string[] = [];
      const cursors: string[] = [];
      let after: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page = await listRepositories(upstream, { ...all, after, limit: 2 });
        seen.push(...page.items);
        if (page.next === null) break;
        expect(page.next).toBe(page.items[page.items.length - 1]);
        cursors.push(page.next);
        after = page.next;
      }
      expect(seen).toEqual(['other/delta', 'web/alpha', 'web/bravo', 'web/charlie', 'web/golf', 'web/multi']);
      expect(cursors.some(hidden)).toBe(false);
      // The last page is exactly full: no empty page after it.
      expect(cursors).toEqual(['web/alpha', 'web/charlie']);
    });

    it('pages a filtered list after a cursor', async () => {
      const first = await listRepositories(upstream, { ...all, query: 'web/', limit: 3 });
      expect(first).toEqual({ items: ['web/alpha', 'web/bravo', 'web/charlie'], next: 'web/charlie' });
      const second = await listRepositories(upstream, { ...all, query: 'web/', after: first.next, limit: 3 });
      expect(second).toEqual({ items: ['web/golf', 'web/multi'], next: null });
    });

    it('shows nothing when nothing is allowed', async () => {
      expect(await listRepositories(upstream, { ...all, allowed: () => false })).toEqual({ items: [], next: null });
    });
  });

  describe('listTags', () => {
    it('lists the tags sorted, in pages', async () => {
      expect(await listTags(upstream, 'web/alpha', { after: null, limit: 10 })).toEqual({ items: ['latest', 'v1', 'v2', 'v3'], next: null });
      const first = await listTags(upstream, 'web/alpha', { after: null, limit: 2 });
      expect(first).toEqual({ items: ['latest', 'v1'], next: 'v1' });
      expect(await listTags(upstream, 'web/alpha', { after: 'v1', limit: 2 })).toEqual({ items: ['v2', 'v3'], next: null });
    });

    it('answers null for a repository the registry does not have, or a name it could not have', async () => {
      expect(await listTags(upstream, 'web/nope', { after: null, limit: 10 })).toBeNull();
      expect(await listTags(upstream, '../v2/_catalog', { after: null, limit: 10 })).toBeNull();
    });
  });

  describe('describeTag', () => {
    it('describes a single-platform image: digest, media type, size of config and layers, created', async () => {
      expect(await describeTag(upstream, 'web/alpha', 'v1')).toEqual({
        tag: 'v1',
        digest: single.digest,
        mediaType: MEDIA_TYPES.manifest,
        size: single.size,
        created: single.created,
        platforms: [],
      });
      expect((await describeTag(upstream, 'web/alpha', 'v3'))?.created).toBe('2023-01-02T03:04:05Z');
    });

    it('describes an index: its platforms without the attestation, the largest size, the first platform created', async () => {
      const described = await describeTag(upstream, 'web/multi', 'stable');
      expect(described).toEqual({
        tag: 'stable',
        digest: indexDigest,
        mediaType: MEDIA_TYPES.index,
        size: Math.max(amd64.size, arm64.size),
        created: amd64.created,
        platforms: [
          { os: 'linux', architecture: 'amd64', variant: null, size: amd64.size },
          { os: 'linux', architecture: 'arm64', variant: 'v8', size: arm64.size },
        ],
      });
    });

    it('answers null for a tag or repository that does not exist', async () => {
      expect(await describeTag(upstream, 'web/alpha', 'missing')).toBeNull();
      expect(await describeTag(upstream, 'web/nope', 'v1')).toBeNull();
      expect(await describeTag(upstream, 'web/alpha', 'not a tag')).toBeNull();
    });

    it('leaves created unknown when the config blob is larger than it reads, the size still known', async () => {
      const big = await pushImage(registry, 'secret/bigconfig', ['v1'], { configPadding: 1024 * 1024 + 10 });
      const described = await describeTag(upstream, 'secret/bigconfig', 'v1');
      expect(described?.created).toBeNull();
      expect(described?.size).toBe(big.size);
    });

    it('describes a page of tags in order, null for one gone', async () => {
      const described = await describeTags(upstream, 'web/alpha', ['latest', 'gone', 'v3', 'v1'], 2);
      expect(described.map((d) => d?.tag ?? null)).toEqual(['latest', null, 'v3', 'v1']);
    });
  });

  describe('digests and deleting', () => {
    it('resolves a tag to its digest, and finds every tag pointing at a digest', async () => {
      expect(await resolveDigest(upstream, 'web/alpha', 'v2')).toBe(single.digest);
      expect(await resolveDigest(upstream, 'web/multi', 'stable')).toBe(indexDigest);
      expect(await resolveDigest(upstream, 'web/alpha', 'missing')).toBeNull();
      expect(await tagsPointingAt(upstream, 'web/alpha', single.digest)).toEqual(['latest', 'v1', 'v2']);
      expect(await tagsPointingAt(upstream, 'web/alpha', single.digest, 2)).toEqual(['latest', 'v1']);
    });

    it('is told clearly that registry 2.8 does not delete a tag by itself, and nothing is deleted', async () => {
      const refused = await deleteReference(upstream, 'web/alpha', 'v1');
      expect(refused).toEqual({ ok: false, status: 405, message: expect.stringContaining('deletes manifests only by digest') });
      expect(await resolveDigest(upstream, 'web/alpha', 'v1')).toBe(single.digest);
    });

    it('deletes a manifest by digest: every tag pointing at it is gone', async () => {
      expect(await deleteReference(upstream, 'web/alpha', single.digest)).toEqual({ ok: true });
      for (const tag of ['latest', 'v1', 'v2']) expect(await describeTag(upstream, 'web/alpha', tag)).toBeNull();
      expect(await resolveDigest(upstream, 'web/alpha', single.digest)).toBeNull();
      expect((await describeTag(upstream, 'web/alpha', 'v3'))?.tag).toBe('v3');
      expect(await deleteReference(upstream, 'web/alpha', single.digest)).toEqual({ ok: false, status: 404, message: expect.stringContaining('no manifest') });
    });

    it('is told when the registry does not delete at all (storage.delete.enabled off)', async () => {
      const locked = await startRegistry({ deleteEnabled: false });
      const lockedUpstream = createUpstream(new URL(locked.url), 5_000);
      try {
        const pushed = await pushImage(locked, 'web/locked', ['v1'], { layerCount: 1 });
        expect(await deleteReference(lockedUpstream, 'web/locked', pushed.digest)).toEqual({ ok: false, status: 405, message: expect.stringContaining('does not allow deleting') });
        expect(await deleteReference(lockedUpstream, 'web/locked', 'v1')).toEqual({ ok: false, status: 405, message: expect.stringContaining('only by digest') });
        expect(await resolveDigest(lockedUpstream, 'web/locked', 'v1')).toBe(pushed.digest);
      } finally {
        lockedUpstream.close();
        await locked.stop();
      }
    });

    it('refuses references that are neither tag nor digest without asking the registry', async () => {
      expect(await deleteReference(upstream, 'web/alpha', '../../_catalog')).toEqual({ ok: false, status: 400, message: 'not a tag or a digest' });
    });
  });

  describe('failures to reach the registry', () => {
    it('throws UpstreamViewError 504 when the registry does not answer in time', async () => {
      const slow = createUpstream(new URL(registry.url), 300);
      registry.freeze();
      try {
        const err = await listTags(slow, 'web/alpha', { after: null, limit: 10 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UpstreamViewError);
        expect((err as UpstreamViewError).status).toBe(504);
      } finally {
        registry.thaw();
        slow.close();
      }
    });

    it('throws UpstreamViewError 502 when nothing listens', async () => {
      const nowhere = createUpstream(new URL(`http://127.0.0.1:${await freePort()}`), 2_000);
      try {
        const err = await listRepositories(nowhere, { allowed: () => true, query: '', after: null, limit: 10 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UpstreamViewError);
        expect((err as UpstreamViewError).status).toBe(502);
      } finally {
        nowhere.close();
      }
    });
  });
});
