// The real Docker engine and CLI for tests: starting the engine, a sample multi-layer image, and
// trusting a test CA the way users do (/etc/docker/certs.d/HOST:PORT/ca.crt).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTar } from './oci-layout.js';
import { requireTool, run, type RunResult } from './tools.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_DOCKERD = join('..', 'shared', 'stack', 'start-dockerd.sh');
const CERTS_ROOT = '/etc/docker/certs.d';

/** Starts (or finds) the test Docker engine and returns its DOCKER_HOST; fails with the script's output. */
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
  const runDocker = (args: string[], input?: string) => run(docker, args, { env, timeoutMs: 280_000, ...(input === undefined ? {} : { input }) });
  return {
    env,
    run: runDocker,
    async ok(args, input) {
      const r = await runDocker(args, input);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
      return r;
    },
  };
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
