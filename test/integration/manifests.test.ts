// OCI image manifests through the gateway: PUT by tag and by digest, then GET and HEAD both ways.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import {
  API_VERSION,
  header,
  makeImage,
  MEDIA_TYPES,
  pushBlobMonolithic,
  pushImage,
  repoName,
  sha256,
  type PushedImage,
} from '../helpers/registry-api.js';

describe('manifests through the gateway', () => {
  let stack: TestStack;
  let image: PushedImage;

  beforeAll(async () => {
    stack = await startTestStack();
    image = await pushImage(stack, repoName('manifests/app'), 'v1');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const accept = { accept: MEDIA_TYPES.manifest };

  it('PUT by tag answered 201 with the digest and a relative Location', () => {
    expect(image.created.status).toBe(201);
    expect(header(image.created, 'docker-content-digest')).toBe(image.manifestDigest);
    expect(header(image.created, 'location')).toBe(`/v2/${image.repo}/manifests/${image.manifestDigest}`);
    expect(header(image.created, 'docker-distribution-api-version')).toBe(API_VERSION);
  });

  for (const by of ['tag', 'digest'] as const) {
    const reference = (): string => (by === 'tag' ? image.tag : image.manifestDigest);

    it(`GET by ${by} returns the exact bytes pushed`, async () => {
      const res = await stack.request(`/v2/${image.repo}/manifests/${reference()}`, { headers: accept });
      expect(res.status).toBe(200);
      expect(res.body.equals(image.manifestBytes)).toBe(true);
      expect(header(res, 'content-type')).toBe(MEDIA_TYPES.manifest);
      expect(header(res, 'docker-content-digest')).toBe(image.manifestDigest);
      expect(Number(header(res, 'content-length'))).toBe(image.manifestBytes.length);
    });

    it(`HEAD by ${by} gives the length and digest and no body`, async () => {
      const res = await stack.request(`/v2/${image.repo}/manifests/${reference()}`, { method: 'HEAD', headers: accept });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(0);
      expect(Number(header(res, 'content-length'))).toBe(image.manifestBytes.length);
      expect(header(res, 'docker-content-digest')).toBe(image.manifestDigest);
      expect(header(res, 'content-type')).toBe(MEDIA_TYPES.manifest);
      expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
    });
  }

  it('takes a PUT by digest, and lists tags of the repository', async () => {
    const repo = repoName('manifests/by-digest');
    const other = makeImage('by-digest');
    await pushBlobMonolithic(stack, repo, other.config);
    await pushBlobMonolithic(stack, repo, other.layer);
    const digest = sha256(other.manifestBytes);
    const put = await stack.request(`/v2/${repo}/manifests/${digest}`, {
      method: 'PUT',
      headers: { 'content-type': MEDIA_TYPES.manifest },
      body: other.manifestBytes,
    });
    expect(put.status).toBe(201);
    expect(header(put, 'location')).toBe(`/v2/${repo}/manifests/${digest}`);
    const get = await stack.request(`/v2/${repo}/manifests/${digest}`, { headers: accept });
    expect(get.status).toBe(200);
    expect(get.body.equals(other.manifestBytes)).toBe(true);
    // Untagged: the tag list is empty (or absent), the first repository's has v1.
    const tags = await stack.request(`/v2/${image.repo}/tags/list`);
    expect(tags.status).toBe(200);
    expect(JSON.parse(tags.text)).toEqual({ name: image.repo, tags: ['v1'] });
  });

  it("passes the registry's refusal of a manifest naming a blob it does not have", async () => {
    const repo = repoName('manifests/missing-blob');
    const lonely = makeImage('lonely');
    await pushBlobMonolithic(stack, repo, lonely.config); // the layer is never pushed
    const put = await stack.request(`/v2/${repo}/manifests/v1`, {
      method: 'PUT',
      headers: { 'content-type': MEDIA_TYPES.manifest },
      body: lonely.manifestBytes,
    });
    expect(put.status).toBe(400);
    const codes = (JSON.parse(put.text) as { errors: Array<{ code: string }> }).errors.map((e) => e.code);
    expect(codes).toContain('MANIFEST_BLOB_UNKNOWN');
    expect(header(put, 'docker-distribution-api-version')).toBe(API_VERSION);
  });

  it('answers 404 MANIFEST_UNKNOWN for a tag never pushed', async () => {
    const res = await stack.request(`/v2/${image.repo}/manifests/never-pushed`, { headers: accept });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.text).errors[0].code).toBe('MANIFEST_UNKNOWN');
  });
});
