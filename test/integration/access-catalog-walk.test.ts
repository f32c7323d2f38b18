// The filtered catalog behind hundreds of hidden repositories, with the real registry: the
// registry work one request causes is bounded, paging still reaches every visible repository
// exactly once, and no answer (body, Link, any header) names a hidden repository.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CATALOG_WALK } from '../../src/proxy/catalog.js';
import { isCursor, sealCursor } from '../../src/proxy/catalog-cursor.js';
import { startTestStack, type TestResponse, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { startFakeUpstream } from '../helpers/upstreams.js';
import { nextLink } from '../helpers/registry-api.js';
import { sleep } from '../helpers/wait.js';

const POLICY = `rules:
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [carol]
    repositories: ["carol/*", "pub/*"]
    actions: [pull]
  - users: [dave]
    repositories: ["dave/*"]
    actions: [pull]
`;

const carol: HtpasswdUser = { user: 'carol', password: 'carol-secret', algorithm: 'bcrypt', cost: 4 };
const dave: HtpasswdUser = { user: 'dave', password: 'dave-secret', algorithm: 'bcrypt', cost: 4 };

// Visible to carol, spread between runs of hidden names, in the registry's order.
const VISIBLE = ['carol/app', 'pub/a', 'pub/b', 'pub/c'];
const HIDDEN = [
  ...Array.from({ length: 350 }, (_, i) => `hidden-h/r${String(i).padStart(3, '0')}`),
  ...Array.from({ length: 250 }, (_, i) => `hidden-q/r${String(i).padStart(3, '0')}`),
  'pub-hidden/x',
];
const ALL = [...VISIBLE, ...HIDDEN].sort(registryOrder);

/** The registry lists repositories by path component ("a/b" before "a-b"). */
function registryOrder(a: string, b: string): number {
  const key = (name: string) => name.replaceAll('/', '\u0000');
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}

let dir: string;
let stack: TestStack;
const defaults = { ...CATALOG_WALK };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-catalog-walk-'));
  await writeFile(join(dir, 'access.yml'), POLICY);
  stack = await startTestStack({ users: [carol, dave], extraArgs: ['--access', join(dir, 'access.yml')] });
  // The registry lists a repository once it has a _layers folder; writing those directly keeps
  // six hundred repositories quick to set up.
  const root = join(stack.registry.storageDir, 'docker/registry/v2/repositories');
  await Promise.all(ALL.map((name) => mkdir(join(root, name, '_layers'), { recursive: true })));
  const listed = (await (await fetch(`${stack.registry.url}/v2/_catalog?n=1000`)).json()) as { repositories: string[] };
  expect(listed.repositories).toEqual(ALL);
}, 60_000);

afterEach(() => {
  Object.assign(CATALOG_WALK, defaults);
});

afterAll(async () => {
  await stack?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Catalog requests the registry has served so far, from its access log. */
function upstreamCatalogRequests(): number {
  return stack.registry.log().match(/"(?:GET|HEAD) \/v2\/_catalog/g)?.length ?? 0;
}

/** The registry writes its access line as it finishes; wait until the count stops moving. */
async function settledUpstreamCount(): Promise<number> {
  let count = upstreamCatalogRequests();
  for (;;) {
    await sleep(30);
    const again = upstreamCatalogRequests();
    if (again === count) return count;
    count = again;
  }
}

function expectNoHiddenName(res: TestResponse): void {
  const everything = `${JSON.stringify(res.headers)}\n${res.text}`;
  const decoded = everything.replaceAll('%2F', '/').replaceAll('%2f', '/');
  for (const name of HIDDEN) {
    expect(everything).not.toContain(name);
    expect(decoded).not.toContain(name);
  }
  expect(decoded).not.toMatch(/hidden/);
}

interface Walk {
  names: string[];
  requests: number;
  /** Most registry requests any one client request caused. */
  maxUpstreamPerRequest: number;
  lasts: string[];
}

/** Follows Links from `first` to the end, as a client would. */
async function pageThrough(user: string, first: string): Promise<Walk> {
  const walk: Walk = { names: [], requests: 0, maxUpstreamPerRequest: 0, lasts: [] };
  let target: string | null = first;
  while (target !== null) {
    expect(walk.requests).toBeLessThan(200);
    const before = await settledUpstreamCount();
    const res = await stack.request(target, { auth: user });
    expect(res.status, res.text).toBe(200);
    walk.maxUpstreamPerRequest = Math.max(walk.maxUpstreamPerRequest, (await settledUpstreamCount()) - before);
    walk.requests++;
    if (user !== 'alice') expectNoHiddenName(res);
    walk.names.push(...(JSON.parse(res.text) as { repositories: string[] }).repositories);
    target = nextLink(res);
    if (target !== null) walk.lasts.push(new URL(target, 'https://x').searchParams.get('last')!);
  }
  return walk;
}

describe('with the default walk (registry pages of 1000, at most 5 per request)', () => {
  it('one request by a user who sees little costs the registry one page, not one per hidden name', async () => {
    const before = await settledUpstreamCount();
    const res = await stack.request('/v2/_catalog?n=1', { auth: carol.user });
    expect(JSON.parse(res.text)).toEqual({ repositories: ['carol/app'] });
    expect((await settledUpstreamCount()) - before).toBe(1);
    const walk = await pageThrough(carol.user, '/v2/_catalog?n=1');
    expect(walk.names).toEqual(VISIBLE);
    expect(walk.maxUpstreamPerRequest).toBe(1);
    // Each Link continues after a name carol was shown; the last page knows it is the last.
    expect(walk.lasts).toEqual(VISIBLE.slice(0, -1));
  });

  it('a user who sees nothing gets an empty page at once', async () => {
    const walk = await pageThrough(dave.user, '/v2/_catalog');
    expect(walk).toMatchObject({ names: [], requests: 1, maxUpstreamPerRequest: 1 });
  });
});

describe('when the page bound is reached first', () => {
  it.each([
    [carol.user, '/v2/_catalog?n=1'],
    [carol.user, '/v2/_catalog?n=3'],
    [carol.user, '/v2/_catalog'],
    [dave.user, '/v2/_catalog?n=2'],
  ])('%s paging %s: bounded work per request, every visible name once, no hidden one anywhere', async (user, first) => {
    Object.assign(CATALOG_WALK, { upstreamPageSize: 50, maxUpstreamPages: 3 });
    const walk = await pageThrough(user, first);
    expect(walk.names).toEqual(user === carol.user ? VISIBLE : []);
    expect(walk.maxUpstreamPerRequest).toBeLessThanOrEqual(3);
    // 605 names at 150 a request: the walk ends in a handful of requests.
    expect(walk.requests).toBeLessThanOrEqual(Math.ceil(ALL.length / 150) + VISIBLE.length + 1);
    // Every Link's last is a name the user was shown, or a sealed cursor.
    for (const last of walk.lasts) expect(walk.names.includes(last) || isCursor(last), last).toBe(true);
    expect(walk.lasts.some(isCursor)).toBe(true);
  });

  it('a user who sees everything still gets it all, once, in order', async () => {
    Object.assign(CATALOG_WALK, { upstreamPageSize: 50, maxUpstreamPages: 3 });
    const walk = await pageThrough('alice', '/v2/_catalog?n=1000');
    expect(walk.names).toEqual(ALL);
    expect(walk.maxUpstreamPerRequest).toBeLessThanOrEqual(3);
  });

  it('HEAD answers the same headers', async () => {
    Object.assign(CATALOG_WALK, { upstreamPageSize: 50, maxUpstreamPages: 3 });
    const res = await stack.request('/v2/_catalog?n=5', { auth: carol.user, method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(0);
    expectNoHiddenName(res);
    expect(nextLink(res)).toMatch(/^\/v2\/_catalog\?last=~/);
  });

  it('a cursor that was not sealed by this gateway run is refused, not followed', async () => {
    Object.assign(CATALOG_WALK, { upstreamPageSize: 50, maxUpstreamPages: 3 });
    const first = await stack.request('/v2/_catalog?n=2', { auth: dave.user });
    const link = nextLink(first)!;
    const last = new URL(link, 'https://x').searchParams.get('last')!;
    expect(isCursor(last)).toBe(true);
    const tampered = `${last.slice(0, -2)}${last.endsWith('AA') ? 'BB' : 'AA'}`;
    const res = await stack.request(`/v2/_catalog?n=2&last=${encodeURIComponent(tampered)}`, { auth: dave.user });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
    expect(res.text).toMatch(/list the catalog again/);
  });
});

describe('a registry that refuses pages of 1000 (catalog.maxentries lowered)', () => {
  it('is read in its default page size, and remembered', async () => {
    const names = Array.from({ length: 250 }, (_, i) => `r${String(i).padStart(3, '0')}`);
    // Distribution 2.8's answers: n above maxentries is a 400, no n is 100 names, a Link while more remain.
    const upstream = await startFakeUpstream((req, res) => {
      const url = new URL(req.url ?? '/', 'http://registry');
      const n = url.searchParams.get('n');
      if (n !== null && Number(n) > 100) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'PAGINATION_NUMBER_INVALID', message: 'invalid number of results requested', detail: { n: Number(n) } }] }));
        return;
      }
      const size = n === null ? 100 : Number(n);
      const last = url.searchParams.get('last') ?? '';
      const page = names.filter((name) => name > last).slice(0, size);
      const more = page.length === size && page[page.length - 1] !== names[names.length - 1];
      res.writeHead(200, { 'content-type': 'application/json', ...(more ? { link: `</v2/_catalog?last=${page[page.length - 1]}&n=${size}>; rel="next"` } : {}) });
      res.end(JSON.stringify({ repositories: page }));
    });
    await writeFile(join(dir, 'all.yml'), 'rules:\n  - users: [alice]\n    repositories: ["r1*"]\n    actions: [pull]\n');
    const gateway = await startTestStack({ upstream: upstream.url, extraArgs: ['--access', join(dir, 'all.yml')] });
    try {
      const get = (target: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpsRequest(`${gateway.gateway.url}${target}`, { ca: gateway.pki.caPem, servername: 'localhost', headers: { authorization: gateway.authorization() } }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        });
      const first = await get('/v2/_catalog?n=1000');
      expect(first.status).toBe(200);
      expect((JSON.parse(first.body) as { repositories: string[] }).repositories).toEqual(names.filter((n) => n.startsWith('r1')));
      const asked = upstream.requests.map((r) => r.url);
      expect(asked[0]).toBe('/v2/_catalog?n=1000');
      expect(asked.slice(1).every((url) => !url.includes('n='))).toBe(true);
      const before = upstream.requests.length;
      await get('/v2/_catalog?n=1000');
      expect(upstream.requests.slice(before).every((r) => !r.url.includes('n='))).toBe(true);
    } finally {
      await gateway.stop();
      await upstream.stop();
    }
  });
});

describe('cursors across the processes of one gateway (--workers)', () => {
  it('a cursor sealed by the first process opens in the cluster workers it forks, and in no other process', async () => {
    const module = fileURLToPath(new URL('../../dist/proxy/catalog-cursor.js', import.meta.url));
    const script = [
      "import cluster from 'node:cluster';",
      `const { openCursor, sealCursor } = await import(${JSON.stringify(module)});`,
      'if (cluster.isPrimary) {',
      "  const worker = cluster.fork({ CURSOR: sealCursor('hidden-h/r123') });",
      "  worker.on('message', (opened) => { process.stdout.write(String(opened)); worker.kill(); });",
      '} else {',
      '  process.send(String(openCursor(process.env.CURSOR)));',
      '}',
    ].join('\n');
    // A file, not -e: cluster.fork() runs the primary's script again.
    const scratch = await mkdtemp(join(tmpdir(), 'rgw-cursor-'));
    try {
      await writeFile(join(scratch, 'fork.mjs'), script);
      const { stdout } = await promisify(execFile)(process.execPath, [join(scratch, 'fork.mjs')]);
      expect(stdout).toBe('hidden-h/r123');
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    // This process sealed one too; a process it starts that is not its cluster worker does not
    // take the key from its environment, nor does a process of another gateway run.
    const cursor = sealCursor('hidden-h/r123');
    const open = `const { openCursor } = await import(${JSON.stringify(module)}); process.stdout.write(String(openCursor(process.argv[1])));`;
    expect((await promisify(execFile)(process.execPath, ['--input-type=module', '-e', open, cursor])).stdout).toBe('null');
    expect((await promisify(execFile)(process.execPath, ['--input-type=module', '-e', open, cursor], { env: { PATH: process.env.PATH } })).stdout).toBe('null');
  });
});
