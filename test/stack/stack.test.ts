// The deployable stack for real: the Dockerfile built, docker-compose.yml brought up on a port and
// public origin given in a .env file (https://registry.test:PORT, a name the test points at
// 127.0.0.1), a push from another container on the compose network by service name, then docker
// login/push/pull through the published port. The base images (registry:2 and the Dockerfile's
// node image) are the real ones, pulled when missing; only on a machine that cannot pull them are
// they built as stand-ins (see provideBaseImages). It runs on a copy of the stack in a temporary
// folder, so the checkout's certs/ and htpasswd stay untouched.
import { X509Certificate, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, buildSampleImage, dockerCli, mapHostName, provideBaseImages, startDockerEngine, trustCaForDocker, type DockerCli } from '../helpers/docker.js';
import { freePort, requireTool, run } from '../helpers/tools.js';
import { eventually, sleep } from '../helpers/wait.js';

/** The base image the Dockerfile builds on (its NODE_IMAGE default). */
async function dockerfileBaseImage(): Promise<string> {
  const dockerfile = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const tag = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  if (tag === undefined) throw new Error('Dockerfile has no "ARG NODE_IMAGE=..." line');
  return tag;
}

/** The host name of the stack's public origin; resolves to 127.0.0.1 while the test runs. */
const PUBLIC_HOST = 'registry.test';
const MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';

/** GET through the published port as a client of https://registry.test:PORT, verifying TLS against `ca`. */
function getFromHost(port: number, ca: string, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((done, fail) => {
    https
      .get({ host: '127.0.0.1', port, path, ca, servername: PUBLIC_HOST, headers: { host: `${PUBLIC_HOST}:${port}`, ...headers }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on('error', fail);
  });
}

describe('docker-compose stack', { timeout: 600_000 }, () => {
  let dockerHost: string;
  let docker: DockerCli;
  let dir: string;
  let port: number;
  let project: string;
  let compose: (args: string[], input?: string) => ReturnType<typeof run>;
  let untrust: (() => Promise<void>) | undefined;
  let unmapHost: (() => Promise<void>) | undefined;
  const images: string[] = [];

  beforeAll(async () => {
    dockerHost = await startDockerEngine();
    dir = await mkdtemp(join(tmpdir(), 'rgw-stack-'));
    docker = dockerCli(dockerHost, join(dir, 'docker-config'));
    await mkdir(join(dir, 'docker-config'));
    const sources = await provideBaseImages(docker, await dockerfileBaseImage(), 'registry:2');
    console.log(`base images: ${JSON.stringify(sources)}`);
    await docker.ok(['build', '--network', 'host', '-t', 'registry-gateway:latest', REPO_ROOT]);

    // The stack as a user has it after a clone: compose file, the empty htpasswd, certs/ with its README.
    await mkdir(join(dir, 'certs'));
    await copyFile(join(REPO_ROOT, 'docker-compose.yml'), join(dir, 'docker-compose.yml'));
    await copyFile(join(REPO_ROOT, 'htpasswd'), join(dir, 'htpasswd'));
    await copyFile(join(REPO_ROOT, 'certs', 'README.md'), join(dir, 'certs', 'README.md'));
    // A port other than 443 and a public origin other than localhost, in .env as a user writes them.
    port = await freePort();
    await writeFile(join(dir, '.env'), `GATEWAY_PORT=${port}\nGATEWAY_PUBLIC_URL=https://${PUBLIC_HOST}:${port}\n`);
    unmapHost = await mapHostName(PUBLIC_HOST, '127.0.0.1');
    project = `rgwstack${randomBytes(3).toString('hex')}`;
    const dockerCompose = requireTool('docker-compose');
    // Only .env configures the stack: variables of the environment the tests run in would override it.
    const env = Object.fromEntries(Object.entries(docker.env).filter(([name]) => !name.startsWith('GATEWAY_')));
    compose = (args, input) =>
      run(dockerCompose, ['-p', project, ...args], {
        cwd: dir,
        env,
        timeoutMs: 300_000,
        ...(input === undefined ? {} : { input }),
      });
  }, 600_000);

  afterAll(async () => {
    if (compose !== undefined) {
      const down = await compose(['down', '-v']);
      if (down.code !== 0) console.error(down.stderr);
    }
    for (const image of images) await docker.run(['rmi', '--force', image]);
    await untrust?.();
    await unmapHost?.();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }, 300_000);

  async function health(service: string): Promise<string> {
    const id = (await compose(['ps', '-q', service])).stdout.trim();
    if (id === '') return 'not created';
    return (await docker.run(['inspect', '--format', '{{.State.Health.Status}}', id])).stdout.trim();
  }

  it('comes up with both healthchecks passing, making its own certificate in ./certs', async () => {
    const up = await compose(['up', '-d', '--no-build']);
    expect(up.code, up.stderr).toBe(0);
    let states = { registry: '', gateway: '' };
    await eventually(async () => {
      states = { registry: await health('registry'), gateway: await health('gateway') };
      return states.registry === 'healthy' && states.gateway === 'healthy';
    }, 120_000, 1000);
    expect(states).toEqual({ registry: 'healthy', gateway: 'healthy' });
    for (const file of ['ca.crt', 'server.crt', 'server.key']) expect((await stat(join(dir, 'certs', file))).isFile()).toBe(true);
    expect((await stat(join(dir, 'certs', 'server.key'))).mode & 0o777).toBe(0o600);
    // gateway-init hands ./htpasswd (the empty file of the clone) to the gateway alone.
    expect((await stat(join(dir, 'htpasswd'))).mode & 0o777).toBe(0o600);
  });

  it('names the service and the public host in its certificate, never the container id', async () => {
    const id = (await compose(['ps', '-q', 'gateway'])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const env = JSON.parse((await docker.ok(['inspect', '--format', '{{json .Config.Env}}', id])).stdout) as string[];
    expect(env).toEqual(expect.arrayContaining([`GATEWAY_PUBLIC_URL=https://${PUBLIC_HOST}:${port}`, `GATEWAY_PUBLISHED_PORT=${port}`]));
    const names = new X509Certificate(await readFile(join(dir, 'certs', 'server.crt'))).subjectAltName ?? '';
    expect(names.split(', ')).toEqual(expect.arrayContaining(['DNS:gateway', `DNS:${PUBLIC_HOST}`]));
    expect(names).not.toContain(id.slice(0, 12));
  });

  it('publishes only the gateway: the registry has no host port', async () => {
    expect((await compose(['port', 'gateway', '8443'])).stdout.trim()).toBe(`0.0.0.0:${port}`);
    const registryPort = await compose(['port', 'registry', '5000']);
    expect(registryPort.stdout.trim()).toBe('');
    const id = (await compose(['ps', '-q', 'registry'])).stdout.trim();
    const bindings = (await docker.ok(['inspect', '--format', '{{json .NetworkSettings.Ports}}', id])).stdout.trim();
    expect(JSON.parse(bindings)).toEqual({ '5000/tcp': null });
  });

  it('adds a user with `docker compose run --rm gateway htpasswd add`, taken up without a restart', async () => {
    const added = await compose(['run', '--rm', '-T', 'gateway', 'htpasswd', 'add', 'alice', '--password-stdin', '--cost', '5'], 'stack secret: 1\n');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('added user "alice"');
    expect(await readFile(join(dir, 'htpasswd'), 'utf8')).toMatch(/^alice:\$2y\$05\$/m);
  });

  it('takes a push from another container on the compose network to https://gateway:8443, verified against certs/ca.crt', async () => {
    // A one-off container of the gateway image (it has node) on the stack's network, without any
    // insecure flag: the certificate must name `gateway` and chain to the stack's CA.
    const pushed = await docker.ok([
      'run', '--rm', '--network', `${project}_default`,
      '--volume', `${join(dir, 'certs', 'ca.crt')}:/ca.crt:ro`,
      '--volume', `${join(REPO_ROOT, 'test', 'stack', 'push-from-network.mjs')}:/push.mjs:ro`,
      '--env', 'PUSH_USER=alice', '--env', 'PUSH_PASSWORD=stack secret: 1', '--env', 'PUSH_REPOSITORY=team/from-network', '--env', 'PUSH_TAG=1',
      '--entrypoint', 'node', 'registry-gateway:latest', '/push.mjs',
    ]);
    const digest = (JSON.parse(pushed.stdout.trim().split('\n').at(-1) ?? '{}') as { digest?: string }).digest;
    expect(digest, pushed.stdout).toMatch(/^sha256:[0-9a-f]{64}$/);

    // Pulled back from the host through the published port, as https://registry.test:PORT.
    const ca = await readFile(join(dir, 'certs', 'ca.crt'), 'utf8');
    const authorization = `Basic ${Buffer.from('alice:stack secret: 1').toString('base64')}`;
    const manifest = await getFromHost(port, ca, '/v2/team/from-network/manifests/1', { authorization, accept: MANIFEST_V2 });
    expect(manifest.status, manifest.body.toString()).toBe(200);
    expect(manifest.headers['docker-content-digest']).toBe(digest);
    expect(manifest.headers['content-type']).toBe(MANIFEST_V2);
  });

  it('takes docker login, push and pull of a multi-layer image through the published port', async () => {
    const host = `${PUBLIC_HOST}:${port}`;
    untrust = await trustCaForDocker(host, await readFile(join(dir, 'certs', 'ca.crt'), 'utf8'));
    const repository = `${host}/team/stack-test`;
    const image = await buildSampleImage(docker, join(dir, 'image'), `${repository}:1`);
    images.push(...image.images);

    const wrong = await docker.run(['login', host, '--username', 'alice', '--password-stdin'], 'wrong\n');
    expect(wrong.stderr).toMatch(/401 Unauthorized/);
    // The new user may take a moment to be reloaded.
    let login = await docker.run(['login', host, '--username', 'alice', '--password-stdin'], 'stack secret: 1\n');
    for (let i = 0; i < 10 && login.code !== 0; i++) {
      await sleep(500);
      login = await docker.run(['login', host, '--username', 'alice', '--password-stdin'], 'stack secret: 1\n');
    }
    expect(login.stdout).toContain('Login Succeeded');

    const push = await docker.ok(['push', `${repository}:1`]);
    const digest = /1: digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)?.[1];
    expect(digest, push.stdout).toBeDefined();
    await docker.ok(['rmi', `${repository}:1`]);
    const pull = await docker.ok(['pull', `${repository}:1`]);
    expect(pull.stdout).toContain(`Digest: ${digest}`);
    expect((await docker.ok(['image', 'inspect', '--format', '{{.Id}}', `${repository}:1`])).stdout.trim()).toBe(image.id);

    const logs = await compose(['logs', '--no-color', 'gateway']);
    expect(logs.stdout).toMatch(/"method":"PUT","path":"\/v2\/team\/stack-test\/manifests\/1","status":201/);
    expect(logs.stdout).not.toContain('stack secret');
  });
});
