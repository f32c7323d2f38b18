// Reading part of a blob with Range, and mounting a blob from one repository into another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { header, publicTarget, pushBlobMonolithic, randomBlob, repoName, sha256 } from '../helpers/registry-api.js';

const PUBLIC_URL = 'https://registry.example.test';

describe('Range reads of a blob', () => {
  let stack: TestStack;
  let repo: string;
  let data: Buffer;

  beforeAll(async () => {
    stack = await startTestStack();
    repo = repoName('ranges/app');
    data = randomBlob(4_096);
    await pushBlobMonolithic(stack, repo, data);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers bytes=10-99 with 206 and exactly those 90 bytes', async () => {
    const res = await stack.request(`/v2/${repo}/blobs/${sha256(data)}`, { headers: { range: 'bytes=10-99' } });
    expect(res.status).toBe(206);
    expect(header(res, 'content-range')).toBe(`bytes 10-99/${data.length}`);
    expect(Number(header(res, 'content-length'))).toBe(90);
    expect(res.body.equals(data.subarray(10, 100))).toBe(true);
  });

  it('answers an open-ended range (resuming a pull) with the rest of the blob', async () => {
    const res = await stack.request(`/v2/${repo}/blobs/${sha256(data)}`, { headers: { range: 'bytes=4000-' } });
    expect(res.status).toBe(206);
    expect(header(res, 'content-range')).toBe(`bytes 4000-4095/${data.length}`);
    expect(res.body.equals(data.subarray(4000))).toBe(true);
  });
});

for (const publicUrl of [undefined, PUBLIC_URL]) {
  const where = publicUrl === undefined ? 'without --public-url' : `with --public-url ${publicUrl}`;

  describe(`cross-repository mount ${where}`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack(publicUrl === undefined ? {} : { publicUrl });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('mounts a blob of another repository: 201 with the Location of the blob in the new one', async () => {
      const from = repoName('mount/source');
      const to = repoName('mount/target');
      const data = randomBlob(10_000);
      const digest = sha256(data);
      await pushBlobMonolithic(stack, from, data, publicUrl === undefined ? {} : { publicUrl });
      const res = await stack.request(`/v2/${to}/blobs/uploads/?mount=${digest}&from=${encodeURIComponent(from)}`, {
        method: 'POST',
        headers: { 'content-length': '0' },
      });
      expect(res.status).toBe(201);
      expect(header(res, 'docker-content-digest')).toBe(digest);
      const target = publicTarget(header(res, 'location'), publicUrl);
      expect(target).toBe(`/v2/${to}/blobs/${digest}`);
      const get = await stack.request(target);
      expect(get.status).toBe(200);
      expect(get.body.equals(data)).toBe(true);
    });

    it('falls back to an upload session (202) when the source does not have the blob', async () => {
      const to = repoName('mount/fallback');
      const digest = sha256('never uploaded');
      const res = await stack.request(`/v2/${to}/blobs/uploads/?mount=${digest}&from=mount/nowhere`, {
        method: 'POST',
        headers: { 'content-length': '0' },
      });
      expect(res.status).toBe(202);
      expect(publicTarget(header(res, 'location'), publicUrl)).toMatch(new RegExp(`^/v2/${to}/blobs/uploads/[0-9a-f-]{36}\\?_state=`));
    });
  });
}
