// The manifest cache must key what it keeps on exactly what the registry was asked. A client that
// names `accept` in its Connection header has the gateway drop its Accept before forwarding; the
// registry (2.8), seeing none, converts a Docker schema-2 manifest to schema 1. Were that answer
// kept under the key of the client's Accept, every later pull of the tag would get schema 1
// (which current docker and containerd refuse) until the copy expired.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { gzipLayer, makeTar, sha256 } from '../helpers/oci-layout.js';
import { openTlsConnection, requestHead, type ConnectionResponse } from '../helpers/tls-connection.js';
import { pushBlobMonolithic, repoName } from '../helpers/registry-api.js';
import { eventually } from '../helpers/wait.js';

const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/** Pushes a Docker schema-2 image (one the registry can convert to schema 1) under `tag`; its manifest digest. */
async function pushDockerImage(stack: TestStack, repo: string, tag: string): Promise<string> {
  const tar = makeTar({ 'srv/hello.txt': `hello ${randomBytes(8).toString('hex')}\n` });
  const layer = gzipLayer(tar);
  // Schema-1 conversion needs the config's history and diff IDs.
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'test layer' }],
  }));
  await pushBlobMonolithic(stack, repo, config);
  await pushBlobMonolithic(stack, repo, layer);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: DOCKER_V2,
    config: { mediaType: DOCKER_CONFIG, digest: sha256(config), size: config.length },
    layers: [{ mediaType: DOCKER_LAYER, digest: sha256(layer), size: layer.length }],
  }));
  const put = await stack.request(`/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': DOCKER_V2 }, body: manifest });
  expect(put.status, put.text).toBe(201);
  return sha256(manifest);
}

function mediaTypeOf(res: ConnectionResponse): unknown {
  return (JSON.parse(res.body.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown }).mediaType ?? 'schema 1';
}

describe('manifest cache poisoning through Connection', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ extraArgs: ['--manifest-cache-ttl', '60'] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** One GET of the manifest over a new connection, with these headers besides Host and Authorization. */
  async function get(path: string, headers: ReadonlyArray<readonly [string, string]>): Promise<ConnectionResponse> {
    const connection = await openTlsConnection(stack.gateway.port, stack.pki.caPem);
    try {
      return await connection.send(requestHead('GET', path, [['Host', stack.host], ['Authorization', stack.authorization()], ...headers]));
    } finally {
      connection.close();
    }
  }

  it('the registry really converts to schema 1 when it sees no Accept', async () => {
    const repo = repoName('poison/baseline');
    await pushDockerImage(stack, repo, 'v1');
    const bare = await get(`/v2/${repo}/manifests/v1`, []);
    expect(bare.status).toBe(200);
    expect(bare.headers['content-type']).toMatch(/schema1|prettyjws|application\/json/);
    expect(mediaTypeOf(bare)).toBe('schema 1');
  });

  const attacks: Array<{ name: string; headers: ReadonlyArray<readonly [string, string]> }> = [
    { name: 'Connection: accept', headers: [['Accept', DOCKER_V2], ['Connection', 'accept']] },
    { name: 'Connection: Accept, keep-alive', headers: [['Accept', DOCKER_V2], ['Connection', 'Accept, keep-alive']] },
    { name: 'two Connection headers', headers: [['Accept', DOCKER_V2], ['Connection', 'keep-alive'], ['Connection', 'ACCEPT']] },
    { name: 'Accept given twice, named in Connection', headers: [['Accept', DOCKER_V2], ['accept', DOCKER_V2], ['Connection', 'accept']] },
    { name: 'Connection naming another end-to-end header', headers: [['Accept', DOCKER_V2], ['User-Agent', 'x'], ['Connection', 'user-agent']] },
  ];

  for (const attack of attacks) {
    it(`a GET with ${attack.name} does not change what the next puller gets`, async () => {
      const repo = repoName('poison/tag');
      const digest = await pushDockerImage(stack, repo, 'latest');
      const path = `/v2/${repo}/manifests/latest`;
      await get(path, attack.headers);
      for (let i = 0; i < 2; i++) {
        const pull = await get(path, [['Accept', DOCKER_V2]]);
        expect(pull.status).toBe(200);
        expect(mediaTypeOf(pull)).toBe(DOCKER_V2);
        expect(pull.headers['docker-content-digest']).toBe(digest);
      }
    });
  }

  it('is not answered from the cache either: a request that loses its Accept gets what the registry says to that', async () => {
    const repo = repoName('poison/hit');
    await pushDockerImage(stack, repo, 'latest');
    const path = `/v2/${repo}/manifests/latest`;
    expect(mediaTypeOf(await get(path, [['Accept', DOCKER_V2]]))).toBe(DOCKER_V2); // now kept
    const stripped = await get(path, [['Accept', DOCKER_V2], ['Connection', 'accept']]);
    expect(mediaTypeOf(stripped)).toBe('schema 1');
  });

  it('keys Accept as it is sent: split over two lines, repeated, or in another case of its name', async () => {
    const repo = repoName('poison/split');
    const digest = await pushDockerImage(stack, repo, 'latest');
    const path = `/v2/${repo}/manifests/latest`;
    const variants: Array<ReadonlyArray<readonly [string, string]>> = [
      [['Accept', DOCKER_V2]],
      [['ACCEPT', DOCKER_V2]],
      [['Accept', 'application/vnd.oci.image.manifest.v1+json'], ['Accept', DOCKER_V2]],
      [['Accept', DOCKER_V2], ['Accept', DOCKER_V2]],
      [['Accept', `${DOCKER_V2}, application/vnd.oci.image.index.v1+json`]],
    ];
    for (const headers of variants) {
      for (let i = 0; i < 2; i++) {
        const res = await get(path, headers);
        expect(res.status).toBe(200);
        expect(mediaTypeOf(res)).toBe(DOCKER_V2);
        expect(res.headers['docker-content-digest']).toBe(digest);
      }
    }
    // And a request without Accept keeps getting schema 1, not someone else's schema 2.
    expect(mediaTypeOf(await get(path, []))).toBe('schema 1');
    expect(mediaTypeOf(await get(path, [['Accept', DOCKER_V2]]))).toBe(DOCKER_V2);
    // Each variant's repeat came from memory, and `ACCEPT` shared `Accept`'s copy: the cache still works.
    const hits = () => stack.logLines().filter((l) => l.msg === 'request' && l.path === path && l.cache === 'hit').length;
    expect(await eventually(() => hits() === 7)).toBe(true);
  });
});
