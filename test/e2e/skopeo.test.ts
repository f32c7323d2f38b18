// skopeo against the gateway, verifying TLS strictly against the test CA (--cert-dir holding only
// ca.crt, never --tls-verify=false): push, inspect, cross-repository copy, pull, delete, refusals.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { readOciLayout, sha256, writeOciLayout, type WrittenOciImage } from '../helpers/oci-layout.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { requireTool, run, type RunResult } from '../helpers/tools.js';
import { sleep } from '../helpers/wait.js';

const BOB: HtpasswdUser = { user: 'bob', password: 'correct horse: battery:staple', algorithm: 'apr1' };

describe('skopeo through the gateway', { timeout: 60_000 }, () => {
  let skopeo: string;
  let stack: TestStack;
  let work: string;
  let srcLayout: string;
  let image: WrittenOciImage;
  let env: NodeJS.ProcessEnv;
  let policy: string;

  const alice = (): string => `${stack.users[0]!.user}:${stack.users[0]!.password}`;
  const ref = (repo: string): string => `docker://${stack.host}/${repo}`;
  const sk = (args: string[]): Promise<RunResult> => run(skopeo, ['--policy', policy, ...args], { env, timeoutMs: 50_000 });
  const ok = async (args: string[]): Promise<RunResult> => {
    const r = await sk(args);
    if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  beforeAll(async () => {
    skopeo = requireTool('skopeo');
    stack = await startTestStack({ users: [BOB], logLevel: 'debug' });
    work = await mkdtemp(join(tmpdir(), 'rgw-skopeo-'));
    ({ env, policy } = await skopeoSandbox(work));
    srcLayout = join(work, 'src');
    image = await writeOciLayout(srcLayout, {
      tag: 'v1',
      layers: [
        { 'etc/app/config.toml': 'name = "app"\n', 'usr/share/app/README': 'registry-gateway e2e\n' },
        { 'opt/app/data.bin': randomBytes(300_000) },
        { 'opt/app/VERSION': '1\n' },
      ],
    });
  });

  afterAll(async () => {
    await stack?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('trusts the gateway only through the test CA', async () => {
    const empty = join(work, 'no-ca');
    await mkdir(empty, { recursive: true });
    const r = await sk(['inspect', '--raw', '--cert-dir', empty, '--creds', alice(), ref('team/app:1')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/x509: certificate signed by unknown authority/);
  });

  it('pushes a multi-layer OCI image, stored upstream byte for byte', async () => {
    const push = await ok([
      'copy', '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', alice(),
      `oci:${srcLayout}:v1`, ref('team/app:1'),
    ]);
    expect(push.stdout).toContain('Writing manifest to image destination');

    const raw = await ok(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('team/app:1')]);
    expect(sha256(raw.stdout)).toBe(image.manifestDigest);
    expect(Buffer.from(raw.stdout)).toEqual(image.manifestBytes);

    // inspect without --raw also reads the config blob through the gateway.
    const inspected = JSON.parse(
      (await ok(['inspect', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('team/app:1')])).stdout,
    ) as { Digest: string; Layers: string[]; Architecture: string; Os: string };
    expect(inspected.Digest).toBe(image.manifestDigest);
    expect(inspected.Layers).toEqual(image.layerDigests);
    expect(inspected.Architecture).toBe('amd64');
    expect(inspected.Os).toBe('linux');

    const tags = JSON.parse(
      (await ok(['list-tags', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('team/app')])).stdout,
    ) as { Tags: string[] };
    expect(tags.Tags).toEqual(['1']);

    // The registry itself (asked directly over plain HTTP) holds that very manifest.
    const upstream = await httpGet(`${stack.registry.url}/v2/team/app/manifests/1`, {
      accept: 'application/vnd.oci.image.manifest.v1+json',
    });
    expect(upstream.status).toBe(200);
    expect(upstream.headers['docker-content-digest']).toBe(image.manifestDigest);

    // The gateway's access log names the user who pushed.
    expect(stack.logLines()).toContainEqual(
      expect.objectContaining({ method: 'PUT', path: '/v2/team/app/manifests/1', status: 201, user: 'alice' }),
    );
  });

  it('copies across repositories by mounting blobs instead of uploading them again', async () => {
    await ok([
      'copy',
      '--src-cert-dir', stack.pki.trustDir, '--src-creds', alice(),
      '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', alice(),
      ref('team/app:1'), ref('other/app:1'),
    ]);
    const raw = await ok(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('other/app:1')]);
    expect(sha256(raw.stdout)).toBe(image.manifestDigest);

    const log = stack.registry.log();
    for (const layer of image.layerDigests) {
      const hex = layer.slice('sha256:'.length);
      // The registry answered the mount request itself (201 Created)...
      expect(log).toMatch(
        new RegExp(`"POST /v2/other/app/blobs/uploads/\\?from=team%2Fapp&mount=sha256%3A${hex} HTTP/1\\.1" 201 `),
      );
      // ...and the layer's bytes were never uploaded to other/app.
      expect(log).not.toMatch(new RegExp(`"PUT /v2/other/app/blobs/uploads/[^"]*digest=sha256%3A${hex}`));
    }
  });

  it('pulls the image back out into a fresh OCI layout with identical blobs', async () => {
    const out = join(work, 'out');
    await ok(['copy', '--src-cert-dir', stack.pki.trustDir, '--src-creds', alice(), ref('other/app:1'), `oci:${out}:pulled`]);
    const pulled = await readOciLayout(out, 'pulled'); // checks every blob against its digest
    expect(pulled.manifestDigest).toBe(image.manifestDigest);
    expect(pulled.configDigest).toBe(image.configDigest);
    expect(pulled.layerDigests).toEqual(image.layerDigests);
    const original = await readOciLayout(srcLayout, 'v1');
    for (const digest of [image.configDigest, ...image.layerDigests]) {
      expect(pulled.blobs.get(digest)).toEqual(original.blobs.get(digest));
    }
  });

  it('refuses a wrong password with an unauthorized error, and nothing is stored', async () => {
    const r = await sk([
      'copy', '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', 'alice:not-her-password',
      `oci:${srcLayout}:v1`, ref('team/denied:1'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\bunauthorized\b/);
    const inspect = await sk(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', 'alice:not-her-password', ref('team/app:1')]);
    expect(inspect.code).not.toBe(0);
    expect(inspect.stderr).toMatch(/\bunauthorized\b/);
    expect((await httpGet(`${stack.registry.url}/v2/team/denied/tags/list`)).status).toBe(404);
  });

  it('refuses a client without credentials', async () => {
    const inspect = await sk(['inspect', '--raw', '--no-creds', '--cert-dir', stack.pki.trustDir, ref('team/app:1')]);
    expect(inspect.code).not.toBe(0);
    expect(inspect.stderr).toMatch(/\bunauthorized\b/);
    const push = await sk(['copy', '--dest-cert-dir', stack.pki.trustDir, `oci:${srcLayout}:v1`, ref('team/anonymous:1')]);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/\bunauthorized\b/);
    expect((await httpGet(`${stack.registry.url}/v2/team/anonymous/tags/list`)).status).toBe(404);
  });

  it('accepts an apr1 user whose password has spaces and colons', async () => {
    const bob = `${BOB.user}:${BOB.password}`;
    await ok(['copy', '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', bob, `oci:${srcLayout}:v1`, ref('bob/app:1')]);
    const raw = await ok(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', bob, ref('bob/app:1')]);
    expect(sha256(raw.stdout)).toBe(image.manifestDigest);
    // A password cut at its first colon or space is not accepted.
    const cut = await sk(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', 'bob:correct horse', ref('bob/app:1')]);
    expect(cut.code).not.toBe(0);
  });

  it('deletes a manifest through the gateway', async () => {
    await ok(['delete', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('other/app:1')]);
    const gone = await sk(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('other/app:1')]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/manifest unknown/i);
    // The other repository still has its image.
    const still = await ok(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('team/app:1')]);
    expect(sha256(still.stdout)).toBe(image.manifestDigest);
  });

  it('reports an unavailable registry, and serves it again once it is back', async () => {
    await stack.registry.halt();
    try {
      // The manifest was served moments ago: for the cache's TTL the gateway may still answer it.
      await sleep(stack.config.manifestCacheMs + 100);
      const down = await sk(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('team/app:1')]);
      expect(down.code).not.toBe(0);
      // The gateway answers 502 itself rather than hanging or dropping the connection.
      expect(down.stderr).toContain('502 Bad Gateway');
    } finally {
      await stack.registry.start();
    }
    const back = await ok(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', alice(), ref('team/app:1')]);
    expect(sha256(back.stdout)).toBe(image.manifestDigest);
  });

  it('never writes passwords or Authorization headers to its log', () => {
    const text = JSON.stringify(stack.logLines());
    expect(stack.logLines().length).toBeGreaterThan(0);
    for (const secret of [stack.users[0]!.password, BOB.password, stack.authorization('alice').slice('Basic '.length), stack.authorization('bob').slice('Basic '.length)]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toContain(Buffer.from('alice:not-her-password').toString('base64'));
    expect(text).not.toContain('not-her-password');
  });
});

function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.once('error', reject);
    req.end();
  });
}
