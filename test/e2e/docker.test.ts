// The real docker CLI and engine against the gateway: login, push, pull of a locally built image.
//
// Docker treats every registry on 127.0.0.0/8 as insecure by default: it still speaks HTTPS to the
// gateway but skips certificate verification there. The CA is installed in certs.d anyway, as a user
// would; strict TLS verification against the test CA is proven by the skopeo test.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSampleImage, dockerCli, removeDockerTraces, startDockerEngine, trustCaForDocker, type DockerCli } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/gateway.js';

describe('docker CLI through the gateway', { timeout: 240_000 }, () => {
  let docker: DockerCli;
  let stack: TestStack;
  let work: string;
  let untrust: (() => Promise<void>) | undefined;
  let repository: string; // 127.0.0.1:PORT/team/docker-e2e
  let builtId: string;
  let pushedDigest: string;
  let payload: Buffer;
  const images: string[] = [];

  const dk = (args: string[], input?: string) => docker.run(args, input);
  const ok = (args: string[], input?: string) => docker.ok(args, input);

  beforeAll(async () => {
    const dockerHost = await startDockerEngine();
    stack = await startTestStack();
    work = await mkdtemp(join(tmpdir(), 'rgw-docker-'));
    // Our own client config: the machine's ~/.docker stays untouched, credentials land here.
    await mkdir(join(work, 'docker-config'));
    docker = dockerCli(dockerHost, join(work, 'docker-config'));
    untrust = await trustCaForDocker(stack.host, stack.pki.caPem);

    repository = `${stack.host}/team/docker-e2e`;
    const image = await buildSampleImage(docker, join(work, 'image'), `${repository}:1`);
    images.push(...image.images);
    builtId = image.id;
    payload = image.payload;
  }, 300_000);

  afterAll(async () => {
    await removeDockerTraces(docker, images, stack?.host);
    await untrust?.();
    await stack?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('rejects docker login with a wrong password', async () => {
    const r = await dk(['login', stack.host, '--username', 'alice', '--password-stdin'], 'not-alice-secret\n');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/login attempt to https:\/\/127\.0\.0\.1:\d+\/v2\/ failed with status: 401 Unauthorized/);
    expect(r.stdout).not.toContain('Login Succeeded');
  });

  it('refuses a push before login', async () => {
    const r = await dk(['push', `${repository}:1`]);
    expect(r.code).not.toBe(0);
    // Docker says so when the registry challenges for Basic credentials and it has none.
    expect(r.stderr).toContain('no basic auth credentials');
    expect((await httpGet(`${stack.registry.url}/v2/team/docker-e2e/tags/list`)).status).toBe(404);
  });

  it('logs in with the right password', async () => {
    const r = await ok(['login', stack.host, '--username', 'alice', '--password-stdin'], `${stack.users[0]!.password}\n`);
    expect(r.stdout).toContain('Login Succeeded');
    const config = JSON.parse(await readFile(join(work, 'docker-config', 'config.json'), 'utf8')) as {
      auths?: Record<string, unknown>;
    };
    expect(Object.keys(config.auths ?? {})).toContain(stack.host);
  });

  it('pushes a built multi-layer image that lands in the registry', async () => {
    const r = await ok(['push', `${repository}:1`]);
    const match = /1: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(r.stdout);
    expect(match, r.stdout).not.toBeNull();
    pushedDigest = match![1]!;
    // Base layer plus three COPY layers.
    expect(r.stdout.match(/: Pushed$/gm)?.length).toBe(4);

    const upstream = await httpGet(`${stack.registry.url}/v2/team/docker-e2e/manifests/1`, {
      accept: 'application/vnd.docker.distribution.manifest.v2+json',
    });
    expect(upstream.status).toBe(200);
    expect(upstream.headers['docker-content-digest']).toBe(pushedDigest);
  });

  it('pulls the image back after the local copy is removed', async () => {
    await ok(['rmi', `${repository}:1`]);
    const absent = await dk(['image', 'inspect', builtId]);
    expect(absent.code).not.toBe(0);

    const pull = await ok(['pull', `${repository}:1`]);
    expect(pull.stdout).toContain(`Digest: ${pushedDigest}`);
    const inspected = JSON.parse((await ok(['image', 'inspect', `${repository}:1`])).stdout) as Array<{
      Id: string;
      RepoDigests: string[];
      RootFS: { Layers: string[] };
    }>;
    expect(inspected[0]!.Id).toBe(builtId);
    expect(inspected[0]!.RepoDigests).toContain(`${repository}@${pushedDigest}`);
    expect(inspected[0]!.RootFS.Layers).toHaveLength(4);

    // The content survived the round trip.
    const name = `rgw-e2e-${randomBytes(4).toString('hex')}`;
    await ok(['create', '--name', name, `${repository}:1`, '/no-command']);
    try {
      const out = join(work, 'copied.bin');
      await ok(['cp', `${name}:/data/three.bin`, out]);
      expect((await readFile(out)).equals(payload)).toBe(true);
    } finally {
      await dk(['rm', '--force', name]);
    }
  });

  it('records the pushes and pulls as alice in the gateway log', () => {
    const lines = stack.logLines();
    expect(lines).toContainEqual(
      expect.objectContaining({ method: 'PUT', path: '/v2/team/docker-e2e/manifests/1', status: 201, user: 'alice' }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ method: 'GET', path: `/v2/team/docker-e2e/manifests/${pushedDigest}`, status: 200, user: 'alice' }),
    );
  });
});

function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolvePromise({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.once('error', reject);
    req.end();
  });
}
