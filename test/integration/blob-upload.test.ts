// Blob uploads through the gateway in the styles real clients use, following every Location the
// gateway answers with, then reading the blob back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import {
  header,
  publicTarget,
  pushBlobChunked,
  pushBlobMonolithic,
  pushBlobStreamed,
  randomBlob,
  rawRequest,
  repoName,
  sha256,
  type PushedBlob,
} from '../helpers/registry-api.js';

const PUBLIC_URL = 'https://registry.example.test';

async function expectBlobStored(stack: TestStack, repo: string, data: Buffer): Promise<void> {
  const digest = sha256(data);
  const res = await stack.request(`/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(200);
  expect(header(res, 'docker-content-digest')).toBe(digest);
  expect(Number(header(res, 'content-length'))).toBe(data.length);
  expect(res.body.equals(data)).toBe(true);
  const head = await stack.request(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  expect(head.status).toBe(200);
  expect(head.body.length).toBe(0);
  expect(Number(header(head, 'content-length'))).toBe(data.length);
  expect(header(head, 'docker-content-digest')).toBe(digest);
}

for (const publicUrl of [undefined, PUBLIC_URL]) {
  const where = publicUrl === undefined ? 'relative Locations (no --public-url)' : `Locations on ${publicUrl}`;

  describe(`blob uploads with ${where}`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack(publicUrl === undefined ? {} : { publicUrl });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    const locationShape = (pushed: PushedBlob): void => {
      for (const location of pushed.locations) {
        publicTarget(location, publicUrl);
        expect(location).not.toContain(stack.registry.url);
        expect(location).not.toContain(`127.0.0.1:${stack.registry.port}`);
      }
    };

    it('takes a chunked upload: POST, three PATCHes with Content-Range, PUT ?digest=', async () => {
      const repo = repoName('uploads/chunked');
      const data = randomBlob(150_000);
      const pushed = await pushBlobChunked(stack, repo, data, 60_000, publicUrl === undefined ? {} : { publicUrl });
      // POST, one per PATCH, PUT.
      expect(pushed.locations).toHaveLength(5);
      locationShape(pushed);
      await expectBlobStored(stack, repo, data);
    });

    it("takes containerd's upload: POST, then one PUT with the whole blob", async () => {
      const repo = repoName('uploads/monolithic');
      const data = randomBlob(70_000);
      const pushed = await pushBlobMonolithic(stack, repo, data, publicUrl === undefined ? {} : { publicUrl });
      expect(pushed.locations).toHaveLength(2);
      locationShape(pushed);
      await expectBlobStored(stack, repo, data);
    });

    it("takes docker's upload: one PATCH streamed chunked with no length, then an empty PUT", async () => {
      const repo = repoName('uploads/streamed');
      const data = randomBlob(100_000);
      const pushed = await pushBlobStreamed(stack, repo, data, publicUrl === undefined ? {} : { publicUrl });
      expect(pushed.locations).toHaveLength(3);
      locationShape(pushed);
      await expectBlobStored(stack, repo, data);
    });

    it('reports upload progress with GET on the upload Location', async () => {
      const repo = repoName('uploads/status');
      const post = await stack.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      expect(post.status).toBe(202);
      const target = publicTarget(header(post, 'location'), publicUrl);
      const data = randomBlob(1_000);
      const patch = await stack.request(target, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': '0-999' },
        body: data,
      });
      expect(patch.status).toBe(202);
      const status = await stack.request(publicTarget(header(patch, 'location'), publicUrl));
      expect(status.status).toBe(204);
      expect(header(status, 'range')).toBe('0-999');
      publicTarget(header(status, 'location'), publicUrl);
    });

    it('refuses a PUT whose digest does not match the bytes, and stores nothing under it', async () => {
      const repo = repoName('uploads/bad-digest');
      const post = await rawRequest(stack, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      expect(post.status).toBe(202);
      const target = publicTarget(header(post, 'location'), publicUrl);
      const wrong = sha256('something else');
      const put = await rawRequest(stack, `${target}&digest=${wrong}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: randomBlob(500),
      });
      expect(put.status).toBe(400);
      expect(JSON.parse(put.text).errors[0].code).toBe('DIGEST_INVALID');
      const head = await stack.request(`/v2/${repo}/blobs/${wrong}`, { method: 'HEAD' });
      expect(head.status).toBe(404);
    });
  });
}
