// A client cannot steer the URLs the registry builds: Host, X-Forwarded-* and Forwarded headers it
// sends are not believed, and the upstream gets exactly one set of forwarding headers, the gateway's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import {
  header,
  headerLines,
  publicTarget,
  pushBlobChunked,
  pushBlobMonolithic,
  pushImage,
  randomBlob,
  rawRequest,
  repoName,
  type Seen,
} from './registry-api.js';
import { startRecordingUpstream, startStackInFrontOf, type RecordedRequest, type RecordingUpstream } from './recording-upstream.js';

const PUBLIC_URL = 'https://registry.example.test';

/** What a hostile client (or a confused proxy in front of the gateway) might send. */
const SPOOFED: Record<string, string> = {
  host: 'evil.example',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'http',
  'x-forwarded-port': '8080',
  'x-forwarded-for': '203.0.113.66',
  forwarded: 'for=203.0.113.66;host=evil.example;proto=http',
  'x-real-ip': '203.0.113.66',
};

for (const publicUrl of [undefined, PUBLIC_URL]) {
  const where = publicUrl === undefined ? 'without --public-url' : `with --public-url ${publicUrl}`;

  describe(`spoofed Host and forwarding headers ${where}`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack(publicUrl === undefined ? {} : { publicUrl });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('leave every Location of uploads, a mount and a manifest PUT on the right origin', async () => {
      const seen: Seen = [];
      const options = { seen, headers: SPOOFED, ...(publicUrl === undefined ? {} : { publicUrl }) };
      const repo = repoName('spoof/app');
      // pushBlob* and pushImage check each Location with publicTarget and follow only its path.
      await pushBlobChunked(stack, repo, randomBlob(40_000), 15_000, options);
      await pushBlobMonolithic(stack, repo, randomBlob(1_000), options);
      const image = await pushImage(stack, repo, 'v1', options);
      const other = repoName('spoof/other');
      const mount = await rawRequest(stack, `/v2/${other}/blobs/uploads/?mount=${image.layerDigest}&from=${encodeURIComponent(repo)}`, {
        method: 'POST',
        headers: SPOOFED,
      });
      seen.push(mount);
      expect(mount.status).toBe(201);
      expect(publicTarget(header(mount, 'location'), publicUrl)).toBe(`/v2/${other}/blobs/${image.layerDigest}`);

      expect(seen.length).toBeGreaterThan(10);
      for (const res of seen) {
        const location = res.headers.location;
        if (typeof location === 'string') {
          expect(location).not.toMatch(/^http:/);
          publicTarget(location, publicUrl);
        }
      }
      expect(headerLines(seen).filter((line) => /evil\.example|203\.0\.113/.test(line))).toEqual([]);
    });
  });
}

// The real registry does not log request headers: a recording upstream shows what reaches it.
describe('forwarding headers the upstream receives', () => {
  let upstream: RecordingUpstream;
  let stack: TestStack;
  let withPublic: TestStack;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    stack = await startStackInFrontOf(upstream);
    withPublic = await startStackInFrontOf(upstream, { publicUrl: PUBLIC_URL });
  });
  afterAll(async () => {
    await stack?.stop();
    await withPublic?.stop();
    await upstream?.close();
  });

  /** Every value of a header, however many times it was sent. */
  const values = (req: RecordedRequest, name: string): string[] => {
    const out: string[] = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i]!.toLowerCase() === name) out.push(req.rawHeaders[i + 1]!);
    }
    return out;
  };

  for (const which of ['no --public-url', '--public-url'] as const) {
    it(`are exactly the gateway's own, once each (${which})`, async () => {
      const target = which === '--public-url' ? withPublic : stack;
      upstream.requests.length = 0;
      const res = await rawRequest(target, '/v2/', { headers: SPOOFED });
      expect(res.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      const seen = upstream.requests[0]!;
      expect(values(seen, 'x-forwarded-host')).toEqual([which === '--public-url' ? 'registry.example.test' : target.host]);
      expect(values(seen, 'x-forwarded-proto')).toEqual(['https']);
      expect(values(seen, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      expect(values(seen, 'x-forwarded-port')).toEqual([]);
      expect(values(seen, 'forwarded')).toEqual([]);
      expect(values(seen, 'x-real-ip')).toEqual([]);
      expect(seen.rawHeaders.join('\n')).not.toMatch(/203\.0\.113\.66/);
    });
  }
});
