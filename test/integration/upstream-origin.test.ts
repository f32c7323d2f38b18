// A registry configured with `http.host` builds every URL on that (internal) origin; clients must
// only ever see relative URLs or the public origin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import {
  header,
  headerLines,
  nextLink,
  publicTarget,
  pushBlobChunked,
  pushBlobStreamed,
  pushImage,
  randomBlob,
  relativeOrPublicTarget,
  repoName,
  sha256,
  type Seen,
} from '../helpers/registry-api.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstreams.js';

const INTERNAL = 'http://registry.internal:5000';
const PUBLIC_URL = 'https://registry.example.test';

for (const publicUrl of [undefined, PUBLIC_URL]) {
  const where = publicUrl === undefined ? 'without --public-url' : `with --public-url ${publicUrl}`;

  describe(`a registry with http.host ${INTERNAL}, ${where}`, () => {
    let stack: TestStack;
    /** Responses of one test, and the upload options that collect them. */
    const collect = (): { seen: Seen; options: { seen: Seen; publicUrl?: string } } => {
      const seen: Seen = [];
      return { seen, options: publicUrl === undefined ? { seen } : { seen, publicUrl } };
    };
    const expectNothingInternal = (seen: Seen, atLeast: number): void => {
      expect(seen.length).toBeGreaterThanOrEqual(atLeast);
      expect(headerLines(seen).filter((line) => /registry\.internal/i.test(line))).toEqual([]);
    };

    beforeAll(async () => {
      stack = await startTestStack({ registry: { httpHost: INTERNAL }, ...(publicUrl === undefined ? {} : { publicUrl }) });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('really builds its URLs on the internal origin (the premise of these tests)', async () => {
      // Straight to the registry, bypassing the gateway.
      const res = await fetch(`${stack.registry.url}/v2/premise/check/blobs/uploads/`, { method: 'POST' });
      expect(res.status).toBe(202);
      expect(res.headers.get('location')).toMatch(new RegExp(`^${INTERNAL.replace(/\./g, '\\.')}/v2/premise/check/blobs/uploads/`));
    });

    it('rewrites every upload Location onto the public origin (or relative)', async () => {
      const { seen, options } = collect();
      const repo = repoName('internal/uploads');
      const chunked = await pushBlobChunked(stack, repo, randomBlob(50_000), 20_000, options);
      const streamed = await pushBlobStreamed(stack, repo, randomBlob(30_000), options);
      // pushBlob* already followed each Location by its path; here, what the client saw.
      for (const location of [...chunked.locations, ...streamed.locations]) {
        expect(location).not.toContain('registry.internal');
        publicTarget(location, publicUrl);
      }
      expectNothingInternal(seen, 8);
    });

    it('rewrites the Locations of an upload status, a mount and a manifest PUT', async () => {
      const { seen, options } = collect();
      const repo = repoName('internal/image');
      const image = await pushImage(stack, repo, 'v1', options);
      const mountTo = repoName('internal/mounted');
      const mount = await stack.request(`/v2/${mountTo}/blobs/uploads/?mount=${image.layerDigest}&from=${encodeURIComponent(repo)}`, {
        method: 'POST',
      });
      seen.push(mount);
      expect(mount.status).toBe(201);
      expect(publicTarget(header(mount, 'location'), publicUrl)).toBe(`/v2/${mountTo}/blobs/${image.layerDigest}`);

      const post = await stack.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      seen.push(post);
      const status = await stack.request(publicTarget(header(post, 'location'), publicUrl));
      seen.push(status);
      expect(status.status).toBe(204);
      publicTarget(header(status, 'location'), publicUrl);
      expectNothingInternal(seen, 8);
    });

    it('lets the catalog be walked and blobs be read with nothing internal in the way', async () => {
      const { seen, options } = collect();
      const repo = repoName('internal/read');
      const data = randomBlob(5_000);
      await pushBlobChunked(stack, repo, data, 5_000, options);
      const blob = await stack.request(`/v2/${repo}/blobs/${sha256(data)}`);
      seen.push(blob);
      expect(blob.body.equals(data)).toBe(true);
      let target: string | null = '/v2/_catalog?n=1';
      let pages = 0;
      while (target !== null && pages < 20) {
        const page = await stack.request(target);
        seen.push(page);
        expect(page.status).toBe(200);
        pages++;
        const link = nextLink(page);
        target = link === null ? null : relativeOrPublicTarget(link, publicUrl);
      }
      expect(pages).toBeGreaterThan(1);
      expectNothingInternal(seen, 6);
    });
  });
}

// The registry's own Link headers are relative; an upstream (or a later registry version) may
// make them absolute on its own origin. A recording upstream shows how the gateway treats that.
describe('absolute Link headers from the upstream', () => {
  let upstream: RecordingUpstream;
  let relative: TestStack;
  let withPublic: TestStack;

  beforeAll(async () => {
    upstream = await startRecordingUpstream((_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        link: `<${INTERNAL}/v2/_catalog?last=b&n=2>; rel="next"`,
      });
      res.end('{"repositories":["a","b"]}');
    });
    relative = await startTestStack({ upstream: upstream.url });
    withPublic = await startTestStack({ publicUrl: PUBLIC_URL, upstream: upstream.url });
  });
  afterAll(async () => {
    await relative?.stop();
    await withPublic?.stop();
    await upstream?.stop();
  });

  it('are made relative without --public-url', async () => {
    const res = await relative.request('/v2/_catalog?n=2');
    expect(header(res, 'link')).toBe('</v2/_catalog?last=b&n=2>; rel="next"');
  });

  it('are moved onto the public origin with --public-url', async () => {
    const res = await withPublic.request('/v2/_catalog?n=2');
    expect(header(res, 'link')).toBe(`<${PUBLIC_URL}/v2/_catalog?last=b&n=2>; rel="next"`);
  });
});
