// The real docker CLI and engine against a gateway with an access file: a read-only user pulls
// and is told "denied" when it pushes; a team user pushes only inside its namespace.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSampleImage, dockerCli, removeDockerTraces, startDockerEngine, trustCaForDocker, type DockerCli } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';

const user = (name: string): HtpasswdUser => ({ user: name, password: `${name}-pw`, algorithm: 'bcrypt', cost: 4 });
const POLICY = `groups:
  ci: [robot-ci]
rules:
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [reader]
    repositories: ["*"]
    actions: [pull]
  - users: ["@ci"]
    repositories: ["team-a/*"]
    actions: [pull, push]
`;

describe('docker with per-repository access', { timeout: 240_000 }, () => {
  let docker: DockerCli;
  let stack: TestStack;
  let work: string;
  let untrust: (() => Promise<void>) | undefined;
  const images: string[] = [];
  let tagged: (repo: string) => Promise<string>;

  const dk = (args: string[], input?: string) => docker.run(args, input);
  const ok = (args: string[], input?: string) => docker.ok(args, input);
  const login = (name: string) => ok(['login', stack.host, '--username', name, '--password-stdin'], `${stack.users.find((u) => u.user === name)!.password}\n`);

  beforeAll(async () => {
    const dockerHost = await startDockerEngine();
    work = await mkdtemp(join(tmpdir(), 'rgw-docker-access-'));
    await writeFile(join(work, 'access.yml'), POLICY);
    stack = await startTestStack({ users: ['reader', 'robot-ci'].map(user), extraArgs: ['--access', join(work, 'access.yml')] });
    await mkdir(join(work, 'docker-config'));
    docker = dockerCli(dockerHost, join(work, 'docker-config'));
    untrust = await trustCaForDocker(stack.host, stack.pki.caPem);
    const built = await buildSampleImage(docker, join(work, 'image'), `${stack.host}/team-a/app:1`);
    images.push(...built.images);
    tagged = async (repo) => {
      const name = `${stack.host}/${repo}`;
      await ok(['tag', `${stack.host}/team-a/app:1`, name]);
      images.push(name);
      return name;
    };
    await login('alice');
    await ok(['push', `${stack.host}/team-a/app:1`]);
    await ok(['push', await tagged('team-b/app:1')]);
  }, 300_000);

  afterAll(async () => {
    await removeDockerTraces(docker, images, stack?.host);
    await untrust?.();
    await stack?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('a read-only user pulls, and its push is denied', async () => {
    await login('reader');
    await ok(['rmi', `${stack.host}/team-b/app:1`]);
    const pull = await ok(['pull', `${stack.host}/team-b/app:1`]);
    expect(pull.stdout).toContain('Digest: sha256:');
    const push = await dk(['push', await tagged('team-b/app:2')]);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('denied: requested access to the resource is denied');
  });

  it('a team user pushes inside its namespace and is denied outside it', async () => {
    await login('robot-ci');
    await ok(['push', await tagged('team-a/ci:1')]);
    const outside = await dk(['push', await tagged('team-b/ci:1')]);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain('denied: requested access to the resource is denied');
    const denied = await dk(['pull', `${stack.host}/team-b/app:1`]);
    // Docker asked for the manifest of a repository this user may not read.
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/denied/);
  });
});
