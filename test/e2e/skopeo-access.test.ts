// skopeo through a gateway with an access file: what each user may pull, push and delete, with
// the error text skopeo prints for a refusal, and TLS verified against the test CA throughout.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { readOciLayout, writeOciLayout, type WrittenOciImage } from '../helpers/oci-layout.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { requireTool, run, type RunResult } from '../helpers/tools.js';

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
  - users: ["*"]
    repositories: ["library/*"]
    actions: [pull]
`;
// skopeo's own words for the gateway's 403: the error code when it reads the DENIED body, the
// whole body for a delete, and the bare status for a HEAD, which has no body.
const DENIED_MANIFEST = /uploading manifest 2 to [^ ]+\/team-b\/app: denied/;
const DENIED_DELETE = /code\W+DENIED\W+message\W+requested access to the resource is denied.*\(403 Forbidden\)/;

describe('skopeo with per-repository access', { timeout: 120_000 }, () => {
  let skopeo: string;
  let stack: TestStack;
  let work: string;
  let layout: string;
  let image: WrittenOciImage;
  let env: NodeJS.ProcessEnv;
  let policyJson: string;

  const ref = (repo: string) => `docker://${stack.host}/${repo}`;
  const creds = (name: string) => `${name}:${stack.users.find((u) => u.user === name)!.password}`;
  const sk = (args: string[]): Promise<RunResult> => run(skopeo, ['--policy', policyJson, ...args], { env, timeoutMs: 60_000 });
  const push = (name: string, repo: string) => sk(['copy', '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', creds(name), `oci:${layout}:v1`, ref(repo)]);
  const inspect = (name: string, repo: string) => sk(['inspect', '--raw', '--cert-dir', stack.pki.trustDir, '--creds', creds(name), ref(repo)]);
  const ok = (r: RunResult): RunResult => {
    if (r.code !== 0) throw new Error(`skopeo failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  beforeAll(async () => {
    skopeo = requireTool('skopeo');
    work = await mkdtemp(join(tmpdir(), 'rgw-skopeo-access-'));
    const accessFile = join(work, 'access.yml');
    await writeFile(accessFile, POLICY);
    stack = await startTestStack({ users: ['reader', 'robot-ci'].map(user), extraArgs: ['--access', accessFile] });
    ({ env, policy: policyJson } = await skopeoSandbox(work));
    layout = join(work, 'src');
    image = await writeOciLayout(layout, { tag: 'v1', layers: [{ 'opt/app/data.bin': randomBytes(100_000) }, { 'opt/app/VERSION': '1\n' }] });
    for (const repo of ['team-a/app:1', 'team-b/app:1', 'library/base:1']) ok(await push('alice', repo));
  });

  afterAll(async () => {
    await stack?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('a read-only user pulls a whole image', async () => {
    const out = join(work, 'pulled');
    ok(await sk(['copy', '--src-cert-dir', stack.pki.trustDir, '--src-creds', creds('reader'), ref('team-b/app:1'), `oci:${out}:pulled`]));
    const pulled = await readOciLayout(out, 'pulled');
    expect(pulled.manifestDigest).toBe(image.manifestDigest);
    expect(pulled.layerDigests).toEqual(image.layerDigests);
  });

  it('a read-only user cannot push: skopeo says denied, and nothing is stored', async () => {
    const r = await push('reader', 'team-b/app:2');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(DENIED_MANIFEST);
    const tags = ok(await sk(['list-tags', '--cert-dir', stack.pki.trustDir, '--creds', creds('alice'), ref('team-b/app')]));
    expect(JSON.parse(tags.stdout)).toMatchObject({ Tags: ['1'] });
  });

  it('a read-only user cannot delete', async () => {
    const r = await sk(['delete', '--cert-dir', stack.pki.trustDir, '--creds', creds('reader'), ref('team-b/app:1')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(DENIED_DELETE);
    ok(await inspect('alice', 'team-b/app:1'));
  });

  it('a team user pushes inside its namespace, mounting layers from a repository it may read', async () => {
    ok(await sk([
      'copy',
      '--src-cert-dir', stack.pki.trustDir, '--src-creds', creds('robot-ci'),
      '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', creds('robot-ci'),
      ref('library/base:1'), ref('team-a/tool:1'),
    ]));
    expect(stack.registry.log()).toMatch(/"POST \/v2\/team-a\/tool\/blobs\/uploads\/\?from=library%2Fbase&mount=sha256%3A[0-9a-f]{64} HTTP\/1\.1" 201 /);
    ok(await inspect('robot-ci', 'team-a/tool:1'));
  });

  it('a team user cannot push outside its namespace, nor read it', async () => {
    const pushed = await push('robot-ci', 'team-b/tool:1');
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toMatch(/failed to read from destination repository team-b\/tool: 403 \(Forbidden\)/);
    const read = await inspect('robot-ci', 'team-b/app:1');
    expect(read.code).not.toBe(0);
    expect(read.stderr).toMatch(/denied/);
    expect((await inspect('alice', 'team-b/tool:1')).code).not.toBe(0);
  });

  it('a copy from a repository the team user cannot read, into its own, is refused', async () => {
    const r = await sk([
      'copy',
      '--src-cert-dir', stack.pki.trustDir, '--src-creds', creds('robot-ci'),
      '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', creds('robot-ci'),
      ref('team-b/app:1'), ref('team-a/copied:1'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/denied/);
    expect((await inspect('alice', 'team-a/copied:1')).code).not.toBe(0);
  });

  it('lists the catalog a user may see', async () => {
    const list = (name: string) => stack.request('/v2/_catalog', { auth: false, headers: { authorization: `Basic ${Buffer.from(creds(name)).toString('base64')}` } });
    expect(JSON.parse((await list('robot-ci')).text)).toEqual({ repositories: ['library/base', 'team-a/app', 'team-a/tool'] });
    expect(JSON.parse((await list('reader')).text)).toEqual({ repositories: ['library/base', 'team-a/app', 'team-a/tool', 'team-b/app'] });
  });

  it('audits who pushed each image', () => {
    const pushes = stack.logLines().filter((l) => l.audit === 'push');
    expect(pushes).toContainEqual(expect.objectContaining({ repository: 'team-a/tool', tag: '1', user: 'robot-ci' }));
    expect(pushes).toContainEqual(expect.objectContaining({ repository: 'team-b/app', tag: '1', user: 'alice', digest: image.manifestDigest }));
    expect(stack.logLines().filter((l) => l.audit === 'denied' && l.user === 'reader').length).toBeGreaterThan(0);
  });
});
