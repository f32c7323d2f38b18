// A --workers gateway keeps a manifest cache in every process: a push through one process must
// reach the copies in all of them, or a pull served by another process would get the old image.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCliGateway, type CliGateway, type CliResponse } from '../helpers/cli-gateway.js';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { makeImage, MEDIA_TYPES, pushBlobMonolithic, pushImage, sha256 } from './registry-api.js';

let stack: TestStack; // its registry, PKI and htpasswd; the gateway under test is the CLI's
let gateway: CliGateway;
beforeAll(async () => {
  stack = await startTestStack();
  // A TTL far longer than the test: only the change going round the processes can refresh them.
  gateway = await spawnCliGateway(
    ['--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
      '--workers', '2', '--log-level', 'info', '--manifest-cache-ttl', '600'],
    stack.pki.caPem,
    2,
  );
});
afterAll(async () => {
  await gateway?.stop();
  await stack?.stop();
});

interface Line {
  msg?: string;
  pid?: number;
  method?: string;
  path?: string;
  cache?: string;
}

function lines(): Line[] {
  return gateway
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

/** GETs over new connections until both processes have answered one (or 60 tries); the answers. */
async function getFromBothProcesses(path: string, since: number, cached: boolean): Promise<CliResponse[]> {
  const answers: CliResponse[] = [];
  const served = () => new Set(lines().slice(since).filter((l) => l.msg === 'request' && l.method === 'GET' && l.path === path && (!cached || l.cache === 'hit')).map((l) => l.pid));
  for (let i = 0; i < 60 && served().size < 2; i++) {
    answers.push(await gateway.request(path, { authorization: stack.authorization(), headers: { accept: MEDIA_TYPES.manifest } }));
    await new Promise((r) => setTimeout(r, 20)); // the access line follows the response
  }
  expect(served().size, 'both processes answered').toBe(2);
  return answers;
}

describe('manifest cache with --workers 2', () => {
  it('a push through one process is seen by the next pull in every process', async () => {
    const repo = 'cache-workers/app';
    const old = await pushImage(stack, repo, 'latest'); // straight through the test stack's own gateway
    const path = `/v2/${repo}/manifests/latest`;
    // Both processes hold the old manifest.
    const before = await getFromBothProcesses(path, 0, true);
    for (const res of before) expect(res.headers['docker-content-digest']).toBe(old.manifestDigest);

    const next = makeImage('next');
    await pushBlobMonolithic(stack, repo, next.config);
    await pushBlobMonolithic(stack, repo, next.layer);
    const put = await gateway.request(path, { method: 'PUT', authorization: stack.authorization(), headers: { 'content-type': MEDIA_TYPES.manifest }, body: next.manifestBytes });
    expect(put.status).toBe(201);

    const since = lines().length;
    const after = await getFromBothProcesses(path, since, false);
    for (const res of after) {
      expect(res.status).toBe(200);
      expect(res.headers['docker-content-digest']).toBe(sha256(next.manifestBytes));
    }
  });
});
