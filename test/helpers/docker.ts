// The real Docker engine and CLI for tests: starting the engine, a sample multi-layer image, and
// trusting a test CA the way users do (/etc/docker/certs.d/HOST:PORT/ca.crt).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTar } from './oci-layout.js';
import { requireTool, run, runOk, type RunResult } from './tools.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The project's own engine script: uses DOCKER_HOST or the default socket when they answer, else starts one. */
const START_DOCKERD = join('scripts', 'start-dockerd.sh');
const CERTS_ROOT = '/etc/docker/certs.d';

/**
 * Finds (or starts) the Docker engine for the tests with scripts/start-dockerd.sh and returns its
 * DOCKER_HOST; fails with the script's output. Under `npm test` the script has already run, and
 * DOCKER_HOST names the engine it found or started.
 */
export async function startDockerEngine(): Promise<string> {
  const started = await run('bash', [START_DOCKERD], { cwd: REPO_ROOT, timeoutMs: 280_000 });
  if (started.code !== 0) throw new Error(`${START_DOCKERD} failed (${started.code}):\n${started.stdout}\n${started.stderr}`);
  const dockerHost = /^DOCKER_HOST=(\S+)$/m.exec(started.stdout)?.[1];
  if (dockerHost === undefined) throw new Error(`${START_DOCKERD} printed no DOCKER_HOST:\n${started.stdout}`);
  return dockerHost;
}

export interface DockerCli {
  readonly env: NodeJS.ProcessEnv;
  /** Runs docker; a non-zero exit is returned, not thrown. */
  run(args: string[], input?: string): Promise<RunResult>;
  /** Runs docker and throws with its output on a non-zero exit. */
  ok(args: string[], input?: string): Promise<RunResult>;
}

/** The docker CLI against `dockerHost`, with its own client config folder (credentials land there). */
export function dockerCli(dockerHost: string, configDir: string, extraEnv: NodeJS.ProcessEnv = {}): DockerCli {
  const docker = requireTool('docker');
  const env = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_CONFIG: configDir, DOCKER_BUILDKIT: '0', ...extraEnv };
  const options = (input?: string) => ({ env, timeoutMs: 280_000, ...(input === undefined ? {} : { input }) });
  return {
    env,
    run: (args, input) => run(docker, args, options(input)),
    ok: (args, input) => runOk(docker, args, options(input)),
  };
}

/**
 * What a test leaves in the engine, removed: its images (tags), and its login to `host` (in the
 * test's own client config). Either may be undefined when the test's setup failed early.
 */
export async function removeDockerTraces(docker: DockerCli | undefined, images: readonly string[], host: string | undefined): Promise<void> {
  if (docker === undefined) return;
  for (const image of images) await docker.run(['rmi', '--force', image]);
  if (host !== undefined) await docker.run(['logout', host]);
}

export interface SampleImage {
  /** Tags made, to remove afterwards. */
  readonly images: string[];
  readonly id: string;
  /** Content of /data/three.bin, to compare after a round trip. */
  readonly payload: Buffer;
}

/** An image of four layers (an imported base and three COPY layers) tagged `tag`. */
export async function buildSampleImage(docker: DockerCli, work: string, tag: string): Promise<SampleImage> {
  const suffix = randomBytes(4).toString('hex');
  const baseImage = `rgw-test-base:${suffix}`;
  await mkdir(work, { recursive: true });
  await writeFile(join(work, 'base.tar'), makeTar({ 'etc/base-release': `registry-gateway test base ${suffix}\n` }));
  await docker.ok(['import', join(work, 'base.tar'), baseImage]);

  const context = join(work, 'context');
  await mkdir(join(context, 'two'), { recursive: true });
  const payload = randomBytes(256 * 1024);
  await writeFile(join(context, 'one.txt'), 'first layer\n');
  await writeFile(join(context, 'two', 'a.txt'), 'second layer, file a\n');
  await writeFile(join(context, 'two', 'b.txt'), 'second layer, file b\n');
  await writeFile(join(context, 'three.bin'), payload);
  await writeFile(
    join(context, 'Dockerfile'),
    [`FROM ${baseImage}`, 'COPY one.txt /data/one.txt', 'COPY two/ /data/two/', 'COPY three.bin /data/three.bin', ''].join('\n'),
  );
  await docker.ok(['build', '--network', 'host', '-t', tag, context]);
  const id = (await docker.ok(['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
  return { images: [baseImage, tag], id, payload };
}

/**
 * A one-layer image made by `docker import` of `rootfsTar`, tagged `tag`; the tag goes into
 * `images` (for the test's cleanup) as soon as it exists. Resolves with the image id.
 */
export async function importDockerImage(docker: DockerCli, rootfsTar: string, tag: string, images: string[]): Promise<string> {
  await docker.ok(['import', rootfsTar, tag]);
  images.push(tag);
  return (await docker.ok(['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
}

export interface DockerRoundTrip {
  /** `NAME:PORT`, the registry host in image names. */
  readonly host: string;
  /** The repository pushed to: `host/REPO:1`. */
  readonly repo: string;
  readonly user: string;
  readonly password: string;
  /** A password the registry refuses, and what docker login must say then. */
  readonly wrongPassword: string;
  readonly refused: RegExp;
  /** The tar `docker import` makes the image from. */
  readonly rootfsTar: string;
  /** Where the image tag and the login go as soon as they exist, for the test's cleanup. */
  readonly images: string[];
  readonly logins: string[];
}

/**
 * What a docker user does against `host`: a login with a wrong password refused, then login, push
 * of a new image `host/REPO:1`, removal and pull; throws with docker's output unless each step goes
 * as it should and the pull gives the same image back. Resolves with the digest the push reported.
 */
export async function dockerRoundTrip(docker: DockerCli, o: DockerRoundTrip): Promise<string> {
  const login = ['login', o.host, '--username', o.user, '--password-stdin'];
  const wrong = await docker.run(login, `${o.wrongPassword}\n`);
  if (wrong.code === 0 || !o.refused.test(wrong.stderr) || wrong.stdout.includes('Login Succeeded')) {
    throw new Error(`docker login ${o.host} with a wrong password: exit ${wrong.code}, expected a refusal matching ${o.refused}:\n${wrong.stdout}\n${wrong.stderr}`);
  }
  const right = await docker.ok(login, `${o.password}\n`);
  o.logins.push(o.host);
  if (!right.stdout.includes('Login Succeeded')) throw new Error(`docker login ${o.host} did not say Login Succeeded:\n${right.stdout}\n${right.stderr}`);

  const image = `${o.host}/${o.repo}:1`;
  const id = await importDockerImage(docker, o.rootfsTar, image, o.images);
  const push = await docker.ok(['push', image]);
  const digest = /1: digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)?.[1];
  if (digest === undefined) throw new Error(`docker push ${image} reported no digest:\n${push.stdout}`);

  await docker.ok(['rmi', image]);
  const pull = await docker.ok(['pull', image]);
  if (!pull.stdout.includes(`Digest: ${digest}`)) throw new Error(`docker pull ${image} did not report the pushed digest ${digest}:\n${pull.stdout}`);
  const pulledId = (await docker.ok(['image', 'inspect', '--format', '{{.Id}}', image])).stdout.trim();
  if (pulledId !== id) throw new Error(`pulled ${image} as ${pulledId}, pushed ${id}`);
  return digest;
}

/** Installs `caPem` as Docker's CA for `hostPort`; the returned function removes it again. */
export async function trustCaForDocker(hostPort: string, caPem: string): Promise<() => Promise<void>> {
  const createdRoot = !existsSync(CERTS_ROOT);
  const dir = join(CERTS_ROOT, hostPort);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca.crt'), caPem);
  return async () => {
    await rm(dir, { recursive: true, force: true });
    if (createdRoot) await rmdir(CERTS_ROOT).catch(() => undefined); // only if still empty
  };
}

/**
 * This machine's first IPv4 address outside loopback: where Docker verifies TLS (it skips
 * verification for registries on 127.0.0.0/8), for a gateway clients reach under names that
 * `mapHostName` points there.
 */
export function nonLoopbackAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no IPv4 address outside loopback: Docker verifies TLS only for registries outside 127.0.0.0/8, so this test needs one');
}

/**
 * Makes `name` resolve to `address` on this machine (a line in /etc/hosts, which the Docker engine
 * reads too), the way a user points a registry's DNS name at it; the returned function removes that
 * line again and nothing else. The file is rewritten in place: in a container it is a bind mount.
 */
export async function mapHostName(name: string, address: string): Promise<() => Promise<void>> {
  const HOSTS = '/etc/hosts';
  const line = `${address} ${name} # registry-gateway test ${randomBytes(4).toString('hex')}`;
  const before = await readFile(HOSTS, 'utf8');
  await writeFile(HOSTS, `${before}${before === '' || before.endsWith('\n') ? '' : '\n'}${line}\n`);
  return async () => {
    const now = await readFile(HOSTS, 'utf8');
    await writeFile(HOSTS, now.split('\n').filter((l) => l !== line).join('\n'));
  };
}

/**
 * Stand-ins for machines that reach no image hub, kept outside this repository (next to the
 * checkout, in ../shared): used only when a base image is neither in the engine nor pullable.
 */
const STANDIN_IMAGES = resolve(REPO_ROOT, '..', 'shared', 'stack', 'standin-images.sh');

export type BaseImageSource = 'present' | 'pulled' | 'stand-in';

/**
 * Makes sure the images the docker-compose stack builds on are in the engine: there already, else
 * pulled. Only an image that cannot be pulled is built as a stand-in, by
 * ../shared/stack/standin-images.sh; when that script is missing too, this fails naming the images
 * and what would provide them. Returns where each image came from.
 */
export async function provideBaseImages(docker: DockerCli, nodeImage: string, registryImage: string): Promise<Record<string, BaseImageSource>> {
  const dockerPath = requireTool('docker');
  const sources: Record<string, BaseImageSource> = {};
  const missing: string[] = [];
  const pullErrors: string[] = [];
  for (const image of [nodeImage, registryImage]) {
    if ((await docker.run(['image', 'inspect', image])).code === 0) {
      sources[image] = 'present';
      continue;
    }
    const pulled = await run(dockerPath, ['pull', image], { env: docker.env, timeoutMs: 180_000 });
    if (pulled.code === 0) {
      sources[image] = 'pulled';
    } else {
      missing.push(image);
      pullErrors.push(`docker pull ${image}: ${(pulled.stderr || pulled.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    }
  }
  if (missing.length === 0) return sources;
  if (!existsSync(STANDIN_IMAGES)) {
    throw new Error(
      `The stack test needs the images ${missing.join(' and ')}, which are not in the Docker engine and cannot be pulled:\n` +
        `${pullErrors.join('\n')}\n` +
        `Make them pullable (network access to the image hub, or a registry mirror for the engine), load them into the engine ` +
        `(docker load), or provide ${STANDIN_IMAGES}, which builds local stand-ins.`,
    );
  }
  // The script always builds both tags: one that is already here is not replaced, its stand-in goes
  // to a throwaway tag that is removed again.
  const throwaway = `rgw-standin-unused:${randomBytes(4).toString('hex')}`;
  const nodeTag = missing.includes(nodeImage) ? nodeImage : throwaway;
  const registryTag = missing.includes(registryImage) ? registryImage : `${throwaway}-registry`;
  const built = await run('bash', [STANDIN_IMAGES, nodeTag, registryTag], { cwd: REPO_ROOT, env: docker.env, timeoutMs: 300_000 });
  if (built.code !== 0) throw new Error(`${STANDIN_IMAGES} failed (${built.code}):\n${built.stdout}\n${built.stderr}\n(after: ${pullErrors.join('; ')})`);
  for (const tag of [nodeTag, registryTag]) if (tag.startsWith(throwaway)) await docker.run(['rmi', '--force', tag]);
  for (const image of missing) sources[image] = 'stand-in';
  return sources;
}
