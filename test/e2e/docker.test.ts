// The real docker CLI and engine against the gateway: login, push, pull of a locally built image.
//
// Docker treats every registry on 127.0.0.0/8 as insecure by default: it still speaks HTTPS to the
// gateway but skips certificate verification there. The CA is installed in certs.d anyway, as a user
// would; strict TLS verification against the test CA is proven by the skopeo test.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { makeTar } from '../helpers/oci-layout.js';
import { requireTool, run, type RunResult } from '../helpers/tools.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_DOCKERD = join('..', 'shared', 'stack', 'start-dockerd.sh');
const CERTS_ROOT = '/etc/docker/certs.d';

describe('docker CLI through the gateway', { timeout: 240_000 }, () => {
  let docker: string;
  let stack: TestStack;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let certsDir: string | undefined;
  let createdCertsRoot = false;
  let repository: string; // 127.0.0.1:PORT/team/docker-e2e
  let baseImage: string;
  let builtId: string;
  let pushedDigest: string;
  let payload: Buffer;
  const images: string[] = [];

  const dk = (args: string[], input?: string): Promise<RunResult> =>
    run(docker, args, { env, timeoutMs: 180_000, ...(input === undefined ? {} : { input }) });
  const ok = async (args: string[], input?: string): Promise<RunResult> => {
    const r = await dk(args, input);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  beforeAll(async () => {
    docker = requireTool('docker');
    const started = await run('bash', [START_DOCKERD], { cwd: repoRoot, timeoutMs: 280_000 });
    if (started.code !== 0) {
      throw new Error(`${START_DOCKERD} failed (${started.code}):\n${started.stdout}\n${started.stderr}`);
    }
    const dockerHost = /^DOCKER_HOST=(\S+)$/m.exec(started.stdout)?.[1];
    if (dockerHost === undefined) throw new Error(`${START_DOCKERD} printed no DOCKER_HOST:\n${started.stdout}`);

    stack = await startTestStack();
    work = await mkdtemp(join(tmpdir(), 'rgw-docker-'));
    // Our own client config: the machine's ~/.docker stays untouched, credentials land here.
    await mkdir(join(work, 'docker-config'));
    env = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_CONFIG: join(work, 'docker-config'), DOCKER_BUILDKIT: '0' };

    createdCertsRoot = !existsSync(CERTS_ROOT);
    certsDir = join(CERTS_ROOT, stack.host);
    await mkdir(certsDir, { recursive: true });
    await writeFile(join(certsDir, 'ca.crt'), stack.pki.caPem);

    const suffix = randomBytes(4).toString('hex');
    repository = `${stack.host}/team/docker-e2e`;
    baseImage = `rgw-e2e-base:${suffix}`;
    await writeFile(join(work, 'base.tar'), makeTar({ 'etc/base-release': `registry-gateway e2e base ${suffix}\n` }));
    await ok(['import', join(work, 'base.tar'), baseImage]);
    images.push(baseImage);

    const context = join(work, 'context');
    await mkdir(join(context, 'two'), { recursive: true });
    payload = randomBytes(256 * 1024);
    await writeFile(join(context, 'one.txt'), 'first layer\n');
    await writeFile(join(context, 'two', 'a.txt'), 'second layer, file a\n');
    await writeFile(join(context, 'two', 'b.txt'), 'second layer, file b\n');
    await writeFile(join(context, 'three.bin'), payload);
    await writeFile(
      join(context, 'Dockerfile'),
      [`FROM ${baseImage}`, 'COPY one.txt /data/one.txt', 'COPY two/ /data/two/', 'COPY three.bin /data/three.bin', ''].join('\n'),
    );
    await ok(['build', '--network', 'host', '-t', `${repository}:1`, context]);
    images.push(`${repository}:1`);
    builtId = (await ok(['image', 'inspect', '--format', '{{.Id}}', `${repository}:1`])).stdout.trim();
  }, 300_000);

  afterAll(async () => {
    if (env !== undefined) {
      for (const image of images) await dk(['rmi', '--force', image]);
      if (stack !== undefined) await dk(['logout', stack.host]);
    }
    if (certsDir !== undefined) await rm(certsDir, { recursive: true, force: true });
    if (createdCertsRoot) await rmdir(CERTS_ROOT).catch(() => undefined); // only if still empty
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
