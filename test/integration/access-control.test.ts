// Per-repository access control with the real registry behind the gateway: who may pull, push
// and delete what, the catalog each user sees, attempts to get around the rules, the audit
// trail, and the access file changing while the gateway runs.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewaySetup } from '../../src/server/resources.js';
import { NAME_TOTAL_LENGTH_MAX } from '../../src/registry/routes.js';
import { isGatewayError } from '../../src/errors.js';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { makeImage, MEDIA_TYPES, nextLink, pushBlobMonolithic, pushImage, sha256, type PushedImage } from '../helpers/registry-api.js';
import { eventually } from '../helpers/wait.js';

const user = (name: string): HtpasswdUser => ({ user: name, password: `${name}-secret`, algorithm: 'bcrypt', cost: 4 });

const POLICY = `groups:
  ci: [robot-ci]
rules:
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [bob]                     # read-only
    repositories: ["*"]
    actions: [pull]
  - users: ["@ci"]
    repositories: ["team-a/*"]
    actions: [pull, push]
  - users: ["*"]
    repositories: ["library/*", "\${user}/*"]
    actions: [pull]
`;

const denied = (repository: string, action: string) => ({
  errors: [{ code: 'DENIED', message: 'requested access to the resource is denied', detail: [{ Type: 'repository', Name: repository, Action: action }] }],
});

/** What the registry itself (plain HTTP, no gateway) answers for a GET. */
function upstreamStatus(stack: TestStack, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${stack.registry.url}${path}`, { agent: false, headers: { accept: MEDIA_TYPES.manifest } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

function upstreamText(stack: TestStack, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${stack.registry.url}${path}`, { agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.once('end', () => resolve(text));
    });
    req.once('error', reject);
    req.end();
  });
}

const as = (name: string, stack: TestStack) => ({ headers: { authorization: stack.authorization(name) } });

let dir: string;
let accessFile: string;
let stack: TestStack;
const images = new Map<string, PushedImage>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-access-'));
  accessFile = join(dir, 'access.yml');
  await writeFile(accessFile, POLICY);
  stack = await startTestStack({ users: ['bob', 'robot-ci', 'carol'].map(user), extraArgs: ['--access', accessFile] });
  for (const repo of ['team-a/app', 'team-b/app', 'library/base', 'carol/tool', 'secret/x']) images.set(repo, await pushImage(stack, repo, 'v1'));
}, 60_000);
afterAll(async () => {
  await stack?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('a read-only user', () => {
  it('pulls manifests, blobs and tags', async () => {
    const image = images.get('team-b/app')!;
    const manifest = await stack.request('/v2/team-b/app/manifests/v1', { auth: 'bob', headers: { accept: MEDIA_TYPES.manifest } });
    expect(manifest.status).toBe(200);
    expect(manifest.body).toEqual(image.manifestBytes);
    const blob = await stack.request(`/v2/team-b/app/blobs/${image.layerDigest}`, { auth: 'bob' });
    expect(blob.status).toBe(200);
    expect(sha256(blob.body)).toBe(image.layerDigest);
    expect(JSON.parse((await stack.request('/v2/team-b/app/tags/list', { auth: 'bob' })).text)).toEqual({ name: 'team-b/app', tags: ['v1'] });
  });

  it('cannot push: 403 DENIED at the first request of an upload, and nothing reaches the registry', async () => {
    stack.clearLogs();
    const start = await stack.request('/v2/team-b/app/blobs/uploads/', { auth: 'bob', method: 'POST', headers: { 'content-length': '0' } });
    expect(start.status).toBe(403);
    expect(JSON.parse(start.text)).toEqual(denied('team-b/app', 'push'));
    expect(start.headers['docker-distribution-api-version']).toBe('registry/2.0');
    const image = makeImage('bob');
    const put = await stack.request('/v2/team-b/app/manifests/v2', { auth: 'bob', method: 'PUT', headers: { 'content-type': MEDIA_TYPES.manifest }, body: image.manifestBytes });
    expect(put.status).toBe(403);
    expect(await upstreamStatus(stack, '/v2/team-b/app/manifests/v2')).toBe(404);
    // Every refusal is in the audit trail, with who, what and from where.
    expect(stack.logLines()).toContainEqual(
      expect.objectContaining({ audit: 'denied', user: 'bob', repository: 'team-b/app', action: 'push', method: 'PUT', remote: '127.0.0.1' }),
    );
  });

  it('cannot delete', async () => {
    const image = images.get('team-b/app')!;
    const del = await stack.request(`/v2/team-b/app/manifests/${image.manifestDigest}`, { auth: 'bob', method: 'DELETE' });
    expect(del.status).toBe(403);
    expect(await upstreamStatus(stack, `/v2/team-b/app/manifests/${image.manifestDigest}`)).toBe(200);
  });
});

describe('a team user', () => {
  it('pushes inside its namespace, and the push is audited', async () => {
    stack.clearLogs();
    const pushed = await pushImage(stack, 'team-a/new', 'v7', as('robot-ci', stack));
    expect(await upstreamStatus(stack, '/v2/team-a/new/manifests/v7')).toBe(200);
    const logged = await eventually(() => stack.logLines().some((l) => l.audit === 'push'));
    expect(logged).toBe(true);
    expect(stack.logLines().filter((l) => l.audit === 'push')).toEqual([
      expect.objectContaining({ msg: 'image pushed', repository: 'team-a/new', tag: 'v7', digest: pushed.manifestDigest, user: 'robot-ci', remote: '127.0.0.1', status: 201 }),
    ]);
  });

  it('cannot push, pull or list tags outside it', async () => {
    const start = await stack.request('/v2/team-b/app/blobs/uploads/', { auth: 'robot-ci', method: 'POST', headers: { 'content-length': '0' } });
    expect(start.status).toBe(403);
    expect((await stack.request('/v2/team-b/app/manifests/v1', { auth: 'robot-ci' })).status).toBe(403);
    expect((await stack.request('/v2/team-b/app/tags/list', { auth: 'robot-ci' })).status).toBe(403);
    // A repository named like the namespace, but outside it.
    expect((await stack.request('/v2/team-ab/app/blobs/uploads/', { auth: 'robot-ci', method: 'POST', headers: { 'content-length': '0' } })).status).toBe(403);
  });

  it('mounts a blob only from a repository it may pull', async () => {
    const base = images.get('library/base')!;
    const ok = await stack.request(`/v2/team-a/mounted/blobs/uploads/?mount=${base.layerDigest}&from=library%2Fbase`, { auth: 'robot-ci', method: 'POST', headers: { 'content-length': '0' } });
    expect(ok.status).toBe(201);
    const secret = images.get('secret/x')!;
    for (const query of [`mount=${secret.layerDigest}&from=secret%2Fx`, `mount=${secret.layerDigest}&from=library%2Fbase&from=secret%2Fx`]) {
      const refused = await stack.request(`/v2/team-a/stolen/blobs/uploads/?${query}`, { auth: 'robot-ci', method: 'POST', headers: { 'content-length': '0' } });
      expect(refused.status, query).toBe(403);
    }
    expect(await upstreamStatus(stack, `/v2/team-a/stolen/blobs/${secret.layerDigest}`)).toBe(404);
  });

  it('cannot smuggle a mount source in a form body, which the registry would read', async () => {
    const secret = images.get('secret/x')!;
    const res = await stack.request('/v2/team-a/smuggled/blobs/uploads/', {
      auth: 'robot-ci',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `mount=${encodeURIComponent(secret.layerDigest)}&from=secret%2Fx`,
    });
    expect(res.status).toBe(415);
    expect(JSON.parse(res.text)).toMatchObject({ errors: [{ code: 'UNSUPPORTED', message: expect.stringContaining('Content-Type') }] });
    expect(await upstreamStatus(stack, `/v2/team-a/smuggled/blobs/${secret.layerDigest}`)).toBe(404);
  });
});

describe('path tricks cannot reach a refused repository', () => {
  const manifestOf = (repo: string) => images.get(repo)!.manifestBytes.toString();
  it.each([
    '/v2/team-a/../team-b/app/manifests/v1',
    '/v2/team-a/%2E%2E/team-b/app/manifests/v1',
    '/v2/team-a%2F..%2Fteam-b/app/manifests/v1',
    '/v2/team-a/app/..%2F..%2Fteam-b/app/manifests/v1',
    '/v2/team-%62/app/manifests/v1',
    '/v2/%74eam-b/app/manifests/v1',
    '/v2/Team-B/app/manifests/v1',
    '/v2/TEAM-B/APP/manifests/v1',
    '/v2/team-b//app/manifests/v1',
    '/v2//team-b/app/manifests/v1',
    '/v2/./team-b/app/manifests/v1',
    '/V2/team-b/app/manifests/v1',
    '/v2/team-b/app/manifests/v1/',
    '/v2/team-b/app/manifests/v1%2F',
    '/v2/team-b/app%00/manifests/v1',
    '/v2/team-b/app/manifests/v1?/v2/team-a/app/manifests/v1',
    '/v2/team-b\\app/manifests/v1',
  ])('%s', async (path) => {
    const res = await stack.request(path, { auth: 'robot-ci', headers: { accept: MEDIA_TYPES.manifest } });
    expect([400, 403, 404]).toContain(res.status);
    expect(res.text).not.toContain(manifestOf('team-b/app'));
  });

  it('the same spellings do reach an allowed repository once canonical', async () => {
    const res = await stack.request('/v2/team-%61/app/manifests/v1', { auth: 'robot-ci', headers: { accept: MEDIA_TYPES.manifest } });
    expect(res.status).toBe(200);
    expect(res.text).toBe(manifestOf('team-a/app'));
  });
});

describe('the catalog', () => {
  const catalogOf = async (name: string, target = '/v2/_catalog') => {
    const res = await stack.request(target, { auth: name });
    expect(res.status, res.text).toBe(200);
    return { repositories: (JSON.parse(res.text) as { repositories: string[] }).repositories, link: nextLink(res), res };
  };

  it('lists only what each user may pull', async () => {
    expect((await catalogOf('bob')).repositories).toEqual(['carol/tool', 'library/base', 'secret/x', 'team-a/app', 'team-a/mounted', 'team-a/new', 'team-b/app']);
    expect((await catalogOf('carol')).repositories).toEqual(['carol/tool', 'library/base']);
    expect((await catalogOf('robot-ci')).repositories).toEqual(['library/base', 'team-a/app', 'team-a/mounted', 'team-a/new']);
    const { res } = await catalogOf('carol');
    expect(Number(res.headers['content-length'])).toBe(res.body.length);
  });

  it('pages the filtered catalog: n names per page, every one seen once, and no Link names a hidden repository', async () => {
    for (const [name, n] of [['carol', 1], ['robot-ci', 1], ['robot-ci', 3], ['bob', 2]] as const) {
      const seen: string[] = [];
      const links: string[] = [];
      let target: string | null = `/v2/_catalog?n=${n}`;
      while (target !== null) {
        expect(links.length).toBeLessThan(20);
        const page = await catalogOf(name, target);
        if (page.link !== null) expect(page.repositories).toHaveLength(n);
        else expect(page.repositories.length).toBeLessThanOrEqual(n);
        seen.push(...page.repositories);
        target = page.link;
        if (page.link !== null) links.push(page.link);
      }
      expect(seen).toEqual((await catalogOf(name)).repositories);
      // Each next page starts after a name this user was shown.
      for (const link of links) {
        const last = new URL(link, 'https://x').searchParams.get('last');
        expect(seen).toContain(last);
      }
    }
  });

  it('answers an empty page to a user who may pull nothing listed', async () => {
    await writeFile(accessFile, `${POLICY}  - users: [dave]\n    repositories: [dave/*]\n    actions: [pull]\n`);
    expect(await stack.gateway.reload()).toBe(true);
    // "*" rules apply to every user; this catalog walk only meets names carol may not pull either.
    const res = await stack.request('/v2/_catalog?n=1&last=library/base', { auth: 'carol' });
    expect(JSON.parse(res.text)).toEqual({ repositories: [] });
    expect(res.headers.link).toBeUndefined();
    await writeFile(accessFile, POLICY);
    expect(await stack.gateway.reload()).toBe(true);
  });
});

describe('repository names longer than the registry takes', () => {
  const long = `team-a/${'x'.repeat(NAME_TOTAL_LENGTH_MAX - 6)}`; // 256 characters

  it.each([
    ['a manifest', `/v2/${long}/manifests/v1`, 'GET'],
    ['an upload', `/v2/${long}/blobs/uploads/`, 'POST'],
    ['a 32 KB name', `/v2/team-a/${'x/'.repeat(8 * 1024)}x/tags/list`, 'GET'],
    ['a mount source', '/v2/team-a/app/blobs/uploads/?mount=sha256%3A' + 'a'.repeat(64) + `&from=${encodeURIComponent(long)}`, 'POST'],
  ])('are refused with NAME_INVALID before any rule is looked at: %s', async (_what, path, method) => {
    stack.clearLogs();
    const res = await stack.request(path, { auth: 'robot-ci', method, headers: { 'content-length': '0' } });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ errors: [{ code: 'NAME_INVALID', message: 'invalid repository name' }] });
    expect(stack.logLines()).toContainEqual(expect.objectContaining({ audit: 'denied', user: 'robot-ci', reason: expect.stringMatching(/characters/) }));
  });

  it('a name of exactly 255 characters is routed and decided as any other', async () => {
    const name = `team-a/${'x'.repeat(NAME_TOTAL_LENGTH_MAX - 7)}`;
    expect((await stack.request(`/v2/${name}/tags/list`, { auth: 'robot-ci' })).status).toBe(404);
    expect((await stack.request(`/v2/${name}/tags/list`, { auth: 'carol' })).status).toBe(403);
  });
});

describe('everyone', () => {
  it('passes the API check /v2/ and gets the usual 401 without credentials', async () => {
    expect((await stack.request('/v2/', { auth: 'carol' })).status).toBe(200);
    const anonymous = await stack.request('/v2/team-a/app/manifests/v1', { auth: false });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic /);
  });

  it('gets a per-user namespace from ${user}/*', async () => {
    expect((await stack.request('/v2/carol/tool/tags/list', { auth: 'carol' })).status).toBe(200);
    expect((await stack.request('/v2/carol/tool/tags/list', { auth: 'bob' })).status).toBe(200); // bob reads everything
    expect((await stack.request('/v2/carol/tool/tags/list', { auth: 'robot-ci' })).status).toBe(403);
  });
});

describe('deletes', () => {
  it('are allowed to alice, and audited', async () => {
    const image = await pushImage(stack, 'team-b/doomed', 'v1');
    stack.clearLogs();
    const del = await stack.request(`/v2/team-b/doomed/manifests/${image.manifestDigest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect(await eventually(() => stack.logLines().some((l) => l.audit === 'delete'))).toBe(true);
    expect(stack.logLines().filter((l) => l.audit === 'delete')).toEqual([
      expect.objectContaining({ msg: 'deleted', repository: 'team-b/doomed', digest: image.manifestDigest, user: 'alice', remote: '127.0.0.1', status: 202 }),
    ]);
  });
});

describe('the access file changing while the gateway runs', () => {
  const bobStartsUpload = async () =>
    (await stack.request('/v2/bob/app/blobs/uploads/', { auth: 'bob', method: 'POST', headers: { 'content-length': '0' } })).status;

  it('takes effect within a couple of seconds', async () => {
    expect(await bobStartsUpload()).toBe(403);
    await writeFile(accessFile, `${POLICY}  - users: ["*"]\n    repositories: ["\${user}/*"]\n    actions: [push]\n`);
    let status = 0;
    await eventually(async () => (status = await bobStartsUpload()) === 202, 4_000, 200);
    expect(status).toBe(202);
    await pushBlobMonolithic(stack, 'bob/app', Buffer.from('bob may push here now'), as('bob', stack));
  });

  it('keeps the last good policy when the file breaks, and logs the line at fault', async () => {
    stack.clearLogs();
    await writeFile(accessFile, `${POLICY}  - users: ["*"]\n    repositories: ["*"]\n    actions: [pull, push, destroy]\n`);
    expect(await eventually(() => stack.logLines().some((l) => l.msg === 'access file not reloaded: keeping the previous policy'), 4_000)).toBe(true);
    const logged = stack.logLines().find((l) => l.msg === 'access file not reloaded: keeping the previous policy')!;
    expect(logged.problems).toEqual([`${accessFile}:18: rule 5: unknown action "destroy"; the actions are pull, push, delete`]);
    // The previous policy: bob still pushes to his namespace, and still nowhere else.
    expect(await bobStartsUpload()).toBe(202);
    expect((await stack.request('/v2/team-b/app/blobs/uploads/', { auth: 'bob', method: 'POST', headers: { 'content-length': '0' } })).status).toBe(403);
  });
});

describe('serve --access', () => {
  it('refuses to start with a broken access file, naming the file, the line and the fix', async () => {
    const bad = join(dir, 'bad.yml');
    await writeFile(bad, 'rules:\n  - users: ["@admins"]\n    repositories: ["*"]\n    actions: [pull]\n');
    const args = [...stack.argv.filter((a, i, all) => a !== '--access' && all[i - 1] !== '--access'), '--access', bad];
    const err: unknown = await loadGatewaySetup(args, {}).catch((e: unknown) => e);
    expect(isGatewayError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as { problems: string[] }).problems).toEqual([`--access: ${bad}:2: rule 1: unknown group "@admins"; define it under groups:`]);
    const fromEnv: unknown = await loadGatewaySetup(args.slice(0, -2), { GATEWAY_ACCESS: join(dir, 'missing.yml') }).catch((e: unknown) => e);
    expect((fromEnv as { problems: string[] }).problems).toEqual([
      `GATEWAY_ACCESS: ${join(dir, 'missing.yml')}: no such file; write one (see the README, "Access control") or leave --access out`,
    ]);
  });
});

describe('without an access file', () => {
  it('lets every user do everything, and still audits pushes and deletes', async () => {
    // No Strict-Transport-Security header either: the digest of a push by tag is still logged.
    const open = await startTestStack({ users: [user('bob')], extraArgs: ['--hsts-max-age', '0'] });
    try {
      const image = await pushImage(open, 'anything/app', 'v1', as('bob', open));
      const del = await open.request(`/v2/anything/app/manifests/${image.manifestDigest}`, { auth: 'bob', method: 'DELETE' });
      expect(del.status).toBe(202);
      expect(await eventually(() => open.logLines().some((l) => l.audit === 'delete'))).toBe(true);
      expect(open.logLines().filter((l) => l.audit !== undefined)).toEqual([
        expect.objectContaining({ audit: 'push', repository: 'anything/app', tag: 'v1', digest: image.manifestDigest, user: 'bob' }),
        expect.objectContaining({ audit: 'delete', repository: 'anything/app', digest: image.manifestDigest, user: 'bob' }),
      ]);
      // What must never reach the registry is refused here too: a form body, an overlong name.
      const form = await open.request('/v2/anything/app/blobs/uploads/', {
        auth: 'bob',
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
        body: '--x\r\nContent-Disposition: form-data; name="from"\r\n\r\nother/app\r\n--x--\r\n',
      });
      expect(form.status).toBe(415);
      for (const [method, path] of [
        ['GET', `/v2/${'a'.repeat(600)}/tags/list`],
        ['GET', `/v2/${'a'.repeat(256)}/tags/list`],
        ['POST', `/v2/anything/app/blobs/uploads/?mount=${image.layerDigest}&from=${'a'.repeat(256)}`],
      ]) {
        const long = await open.request(path!, { auth: 'bob', method, headers: { 'content-length': '0' } });
        expect(long.status, path).toBe(400);
        expect(long.text).toContain('NAME_INVALID');
      }
      expect(open.logLines().filter((l) => l.audit === 'denied')).toHaveLength(4);
    } finally {
      await open.stop();
    }
  });
});

describe('the catalog behind many hidden repositories', () => {
  it('fills the page a user asked for from past the hidden ones', async () => {
    // One blob is enough for the registry to list a repository; these sort before carol's.
    for (let i = 0; i < 105; i++) await pushBlobMonolithic(stack, `bulk/r${String(i).padStart(3, '0')}`, Buffer.from('x'));
    // The registry's own catalog, whole.
    const everything = JSON.parse(await upstreamText(stack, '/v2/_catalog?n=1000')) as { repositories: string[] };
    expect(everything.repositories.filter((r) => r.startsWith('bulk/'))).toHaveLength(105);
    // The registry's pages are large: the gateway read to the end and knows nothing follows.
    const first = await stack.request('/v2/_catalog?n=2', { auth: 'carol' });
    expect(JSON.parse(first.text)).toEqual({ repositories: ['carol/tool', 'library/base'] });
    expect(nextLink(first)).toBeNull();
    const one = await stack.request('/v2/_catalog?n=1', { auth: 'carol' });
    expect(JSON.parse(one.text)).toEqual({ repositories: ['carol/tool'] });
    expect(nextLink(one)).toBe('/v2/_catalog?last=carol%2Ftool&n=1');
    const rest = await stack.request(nextLink(one)!, { auth: 'carol' });
    expect(JSON.parse(rest.text)).toEqual({ repositories: ['library/base'] });
    expect(rest.headers.link).toBeUndefined();
    // Without n the registry pages by 100 itself: a user who may read everything gets its pages,
    // and one who may read two names past the first page gets them at once.
    const bob = await stack.request('/v2/_catalog', { auth: 'bob' });
    expect((JSON.parse(bob.text) as { repositories: string[] }).repositories).toEqual(everything.repositories.slice(0, 100));
    expect(nextLink(bob)).toBe(`/v2/_catalog?last=${encodeURIComponent(everything.repositories[99]!)}`);
    const carol = await stack.request('/v2/_catalog', { auth: 'carol' });
    expect(JSON.parse(carol.text)).toEqual({ repositories: ['carol/tool', 'library/base'] });
    expect(carol.headers.link).toBeUndefined();
  });
});
