// `--auth upstream`: the gateway terminates TLS in front of a real registry that signs users in
// itself, checking no credentials of its own. With `auth: htpasswd` its Basic challenge, 401s and
// 200s come through, skopeo logs in, pushes and pulls, and a manifest one user fetched is never
// answered to anyone else. With `auth: token` (a token issuer and a front beside the registry, as
// Harbor has them) the Bearer challenge's realm moves onto the gateway and the whole token flow
// runs through it. The access log names whom the credentials claim, marked unverified.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { jsonLogLines as logLines, spawnGateway, type GatewayWithUser, type LogLine } from '../helpers/gateway-process.js';
import { writeHtpasswd, type HtpasswdUser } from '../helpers/htpasswd.js';
import { readOciLayout, writeOciLayout, type WrittenOciImage } from '../helpers/oci-layout.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { startTokenRegistry, type TokenRegistry } from '../helpers/token-registry.js';
import { requireTool, run, type RunResult } from '../helpers/tools.js';
import { eventually, sleep } from '../helpers/wait.js';

// The registry's user, unknown to the gateway (which reads no htpasswd file in this mode).
const CAROL: HtpasswdUser = { user: 'carol', password: 'carol: the registry knows her', algorithm: 'bcrypt', cost: 4 };
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const WARN = 40;


interface Skopeo {
  run(args: string[]): Promise<RunResult>;
  ok(args: string[]): Promise<RunResult>;
}

async function skopeoIn(work: string): Promise<Skopeo> {
  const skopeo = requireTool('skopeo');
  const { env, policy } = await skopeoSandbox(work);
  const runIt = (args: string[]) => run(skopeo, ['--policy', policy, ...args], { env, timeoutMs: 90_000 });
  return {
    run: runIt,
    async ok(args) {
      const r = await runIt(args);
      if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
      return r;
    },
  };
}

describe('--auth upstream in front of a registry with auth: htpasswd', { timeout: 120_000 }, () => {
  let work: string;
  let registry: TestRegistry;
  let gateway: GatewayWithUser;
  let image: WrittenOciImage;
  let layout: string;
  const carol = basicAuthorization(CAROL.user, CAROL.password);
  const requestLines = (): LogLine[] => logLines(gateway.output()).filter((l) => l.msg === 'request');

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'rgw-upstream-auth-'));
    const htpasswd = join(work, 'registry-htpasswd');
    await writeHtpasswd(htpasswd, [CAROL]);
    registry = await startRegistry({ htpasswdFile: htpasswd, parentDir: work });
    // The htpasswd file named last does not exist: in this mode none is read.
    gateway = await spawnGateway(registry.url, ['--auth', 'upstream', '--log-level', 'info', '--htpasswd', join(work, 'no-such-htpasswd')]);
    layout = join(work, 'layout');
    image = await writeOciLayout(layout, { tag: 'v1', layers: [{ 'opt/app/data.bin': randomBytes(200_000) }, { 'opt/app/VERSION': '1\n' }] });
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await registry?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('says at start that it does not authenticate, and does not call the registry\'s login a mistake', async () => {
    await gateway.waitForOutput('the gateway does not authenticate');
    const lines = logLines(gateway.output());
    const warning = lines.find((l) => l.msg.includes('the gateway does not authenticate'))!;
    expect(warning).toMatchObject({ level: WARN, auth: 'upstream', upstream: registry.url, manifestCache: 'off' });
    expect(warning.msg).toContain(`the registry at ${registry.url} must sign users in`);
    expect(lines.find((l) => l.msg === 'registry-gateway listening')).toMatchObject({ auth: 'upstream', upstream: registry.url });
    // The start-up look at the upstream has answered by the time /readyz can.
    expect((await gateway.request('/readyz')).status).toBe(200);
    await sleep(500);
    expect(gateway.output()).not.toContain('asks for its own login');
    expect(gateway.output()).not.toContain('without credentials');
  });

  it("is ready while the registry asks for its login: /readyz 200, /healthz the gateway's own", async () => {
    const ready = await gateway.request('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body.toString())).toEqual({ status: 'ready' });
    expect((await gateway.request('/healthz')).status).toBe(200);
  });

  it("passes the registry's own challenge and answers: 401 without or with a wrong password, 200 with the right one", async () => {
    const none = await gateway.request('/v2/');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Basic realm="test"');
    expect(none.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(JSON.parse(none.body.toString())).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });

    const wrong = await gateway.request('/v2/', { authorization: basicAuthorization(CAROL.user, 'not her password') });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toBe('Basic realm="test"');

    const right = await gateway.request('/v2/', { authorization: carol });
    expect(right.status).toBe(200);
    expect(JSON.parse(right.body.toString())).toEqual({});
    // Each answer was the registry's: the gateway refused nothing itself.
    expect(await eventually(() => requestLines().filter((l) => l.path === '/v2/').length >= 3, 5_000)).toBe(true);
    expect(requestLines().filter((l) => l.path === '/v2/').map((l) => [l.status, l.upstreamStatus])).toEqual(expect.arrayContaining([[401, 401], [200, 200]]));
    expect(gateway.output()).not.toContain('the registry answered 401 itself');
  });

  it('refuses two Authorization headers itself rather than leave the registry to pick one', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: gateway.port, path: '/v2/', headers: ['Host', `localhost:${gateway.port}`, 'Authorization', basicAuthorization('nobody', 'x'), 'Authorization', carol], ca: gateway.pki.caPem, servername: 'localhost', agent: false },
        (r) => {
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (c: string) => (body += c));
          r.once('end', () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.once('error', reject);
      req.end();
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'UNSUPPORTED', message: 'one Authorization header with one credential is allowed' }] });
    expect(await eventually(() => requestLines().some((l) => l.status === 400 && l.path === '/v2/'), 5_000)).toBe(true);
    expect(requestLines().find((l) => l.status === 400 && l.path === '/v2/')).toMatchObject({ upstreamStatus: null });
  });

  it('lets skopeo log in, push, inspect and pull through the gateway, TLS verified', async () => {
    const skopeo = await skopeoIn(await mkdtemp(join(work, 'skopeo-')));
    const host = `localhost:${gateway.port}`;
    const trust = gateway.pki.trustDir;
    const wrong = await skopeo.run(['login', '--cert-dir', trust, '--username', CAROL.user, '--password', 'not her password', host]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/invalid username\/password|401|unauthorized/i);
    await skopeo.ok(['login', '--cert-dir', trust, '--username', CAROL.user, '--password', CAROL.password, host]);
    await skopeo.ok(['copy', '--dest-cert-dir', trust, `oci:${layout}:v1`, `docker://${host}/team/app:1`]);
    const raw = await skopeo.ok(['inspect', '--raw', '--cert-dir', trust, `docker://${host}/team/app:1`]);
    expect(Buffer.from(raw.stdout)).toEqual(image.manifestBytes);
    const out = join(work, 'pulled');
    await skopeo.ok(['copy', '--src-cert-dir', trust, `docker://${host}/team/app:1`, `oci:${out}:pulled`]);
    const pulled = await readOciLayout(out, 'pulled'); // every blob checked against its digest
    expect(pulled.manifestDigest).toBe(image.manifestDigest);
    expect(pulled.layerDigests).toEqual(image.layerDigests);
    // The registry signed carol in: the gateway passed her credentials on.
    expect(registry.log()).toMatch(/auth\.user\.name="?carol"?/);
  });

  it('never answers a manifest one user fetched to a request without credentials', async () => {
    const path = '/v2/team/app/manifests/1';
    const seen = await gateway.request(path, { authorization: carol, headers: { accept: MANIFEST_TYPES } });
    expect(seen.status).toBe(200);
    expect(seen.body).toEqual(image.manifestBytes);
    // At once, and again, well within the one second a manifest cache would keep it by default.
    for (let i = 0; i < 2; i++) {
      const anonymous = await gateway.request(path, { headers: { accept: MANIFEST_TYPES } });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.toString()).not.toContain(image.manifestDigest.slice('sha256:'.length));
      const wrong = await gateway.request(path, { authorization: basicAuthorization(CAROL.user, 'guess'), headers: { accept: MANIFEST_TYPES } });
      expect(wrong.status).toBe(401);
    }
    expect(await eventually(() => requestLines().filter((l) => l.path === path).length >= 5, 5_000)).toBe(true);
    expect(requestLines().filter((l) => l.path === path).every((l) => l.cache === undefined)).toBe(true);
  });

  it('logs the user the credentials claim, marked unverified, and never the password or the header', async () => {
    const lines = requestLines();
    const carolLines = lines.filter((l) => l.user === CAROL.user);
    expect(carolLines.length).toBeGreaterThan(0);
    for (const line of carolLines) expect(line.userVerified).toBe(false);
    // A wrong password claims carol too: the registry refused it, and the log says so.
    expect(carolLines.some((l) => l.status === 401)).toBe(true);
    // Requests without credentials the registry got say so too; the gateway's own answers (/readyz) are not marked.
    const anonymous = lines.filter((l) => l.user === null && l.upstreamStatus !== null);
    expect(anonymous.length).toBeGreaterThan(0);
    expect(anonymous.every((l) => l.userVerified === false)).toBe(true);
    expect(lines.find((l) => l.path === '/readyz')?.userVerified).toBeUndefined();
    const output = gateway.output();
    expect(output).not.toContain(CAROL.password);
    expect(output).not.toContain(carol.slice('Basic '.length));
    expect(output.toLowerCase()).not.toContain('authorization');
  });
});

describe('--auth upstream in front of a registry with token auth', { timeout: 120_000 }, () => {
  let work: string;
  let tokens: TokenRegistry;
  let stack: TestStack;
  const carol = basicAuthorization(CAROL.user, CAROL.password);
  const requestLines = (): Array<Record<string, unknown>> => stack.logLines().filter((l) => l.msg === 'request');

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'rgw-upstream-token-'));
    tokens = await startTokenRegistry(work, { [CAROL.user]: CAROL.password });
    stack = await startTestStack({ upstream: tokens.origin, extraArgs: ['--auth', 'upstream'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await tokens?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  /** GET /token as the challenge says, through the gateway; the token. */
  const token = async (scope: string, authorization?: string): Promise<string> => {
    const res = await stack.request(`/token?service=${tokens.service}&scope=${encodeURIComponent(scope)}`, { auth: false, headers: authorization === undefined ? {} : { authorization } });
    expect(res.status).toBe(200);
    return (JSON.parse(res.text) as { token: string }).token;
  };

  it('is ready: the registry asks for a token, as it should; and keeps no users of its own', async () => {
    expect((await stack.request('/readyz', { auth: false })).status).toBe(200);
    // No authenticator: no credential cache, no throttle, no hashing threads.
    expect(stack.gateway.authenticator).toBeNull();
  });

  it("passes the registry's Bearer challenge with its realm moved onto the gateway", async () => {
    expect(tokens.realm).toBe(`${tokens.origin}/token`);
    const res = await stack.request('/v2/team/app/tags/list', { auth: false });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(`Bearer realm="https://${stack.host}/token",service="${tokens.service}",scope="repository:team/app:pull"`);
    expect(String(res.headers['www-authenticate'])).not.toContain(tokens.origin);
  });

  it('forwards the token request and its Basic credentials to the token service, and the token to the registry', async () => {
    const wrong = await stack.request(`/token?service=${tokens.service}&scope=repository:team/app:pull`, { auth: false, headers: { authorization: basicAuthorization(CAROL.user, 'guess') } });
    expect(wrong.status).toBe(401);

    const pull = await token('repository:team/app:pull', carol);
    const withToken = await stack.request('/v2/team/app/tags/list', { auth: false, headers: { authorization: `Bearer ${pull}` } });
    // Signed in and allowed: the registry looked for the repository (none yet).
    expect(withToken.status).toBe(404);
    expect(JSON.parse(withToken.text)).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN' }] });
    expect((await stack.request('/v2/', { auth: false, headers: { authorization: `Bearer ${pull}` } })).status).toBe(200);

    // A token granting nothing (anonymous), and one with a forged signature, are the registry's to refuse.
    const nothing = await token('repository:team/app:pull');
    expect((await stack.request('/v2/team/app/tags/list', { auth: false, headers: { authorization: `Bearer ${nothing}` } })).status).toBe(401);
    const [head, body] = pull.split('.');
    const forged = `${head}.${body}.${Buffer.alloc(64, 1).toString('base64url')}`;
    expect((await stack.request('/v2/team/app/tags/list', { auth: false, headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);

    expect(tokens.tokenRequests().filter((r) => r.user === CAROL.user).length).toBeGreaterThan(0);
    const lines = requestLines();
    // The token request names carol by her Basic user; the registry requests by the token's sub.
    expect(lines).toContainEqual(expect.objectContaining({ path: '/token', status: 200, user: CAROL.user, userVerified: false }));
    expect(lines).toContainEqual(expect.objectContaining({ path: '/v2/team/app/tags/list', status: 404, user: CAROL.user, userVerified: false }));
    const logged = JSON.stringify(stack.logLines());
    expect(logged).not.toContain(pull);
    expect(logged).not.toContain(pull.split('.')[2]);
    expect(logged).not.toContain(CAROL.password);
  });

  it('completes the token flow for skopeo: push and pull through the gateway', async () => {
    const skopeo = await skopeoIn(await mkdtemp(join(work, 'skopeo-')));
    const layout = join(work, 'layout');
    const image = await writeOciLayout(layout, { tag: 'v1', layers: [{ 'etc/token': 'through the gateway\n' }] });
    const ref = `docker://localhost:${stack.gateway.port}/team/token:1`;
    const creds = `${CAROL.user}:${CAROL.password}`;
    const before = tokens.tokenRequests().length;
    const tokenLines = () => requestLines().filter((l) => l.path === '/token' && l.status === 200 && l.user === CAROL.user).length;
    const viaGateway = tokenLines();
    await skopeo.ok(['copy', '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', creds, `oci:${layout}:v1`, ref]);
    const out = join(work, 'pulled');
    await skopeo.ok(['copy', '--src-cert-dir', stack.pki.trustDir, '--src-creds', creds, ref, `oci:${out}:pulled`]);
    const pulled = await readOciLayout(out, 'pulled');
    expect(pulled.manifestDigest).toBe(image.manifestDigest);
    // skopeo asked the realm on the gateway for push and pull tokens, and got them from the issuer.
    const asked = tokens.tokenRequests().slice(before);
    expect(asked.some((r) => r.user === CAROL.user && r.status === 200 && r.scopes.some((s) => s.startsWith('repository:team/token:') && s.includes('push')))).toBe(true);
    expect(asked.some((r) => r.user === CAROL.user && r.status === 200 && r.scopes.includes('repository:team/token:pull'))).toBe(true);
    // ... through the gateway: the realm it was given is the gateway's, not the front's.
    expect(tokenLines()).toBeGreaterThanOrEqual(viaGateway + 2);
    expect(requestLines()).toContainEqual(expect.objectContaining({ method: 'PUT', path: '/v2/team/token/manifests/1', status: 201, user: CAROL.user, userVerified: false }));
  });

  it('moves the realm onto the public URL for clients that use its name', async () => {
    const publicStack = await startTestStack({ upstream: tokens.origin, publicUrl: 'https://registry.test:5443', extraArgs: ['--auth', 'upstream'] });
    try {
      const res = await publicStack.request('/v2/', { auth: false });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(`Bearer realm="https://registry.test:5443/token",service="${tokens.service}"`);
    } finally {
      await publicStack.stop();
    }
  });
});

describe('--auth upstream in front of a registry that signs nobody in', { timeout: 60_000 }, () => {
  it('warns at start that anyone can pull and push', async () => {
    const registry = await startRegistry();
    let gateway: GatewayWithUser | undefined;
    try {
      gateway = await spawnGateway(registry.url, ['--auth', 'upstream', '--log-level', 'info']);
      await gateway.waitForOutput('anyone can pull and push');
      const warning = logLines(gateway.output()).find((l) => l.msg.includes('anyone can pull and push'))!;
      expect(warning).toMatchObject({ level: WARN, upstream: registry.url });
      expect(warning.msg).toBe(
        `the upstream registry ${registry.url} answered /v2/ without credentials, but with --auth upstream the gateway checks none: anyone can pull and push; turn on the registry's own auth (htpasswd or token), or use --auth basic`,
      );
      // It works all the same: ready, and open.
      expect((await gateway.request('/readyz')).status).toBe(200);
      expect((await gateway.request('/v2/')).status).toBe(200);
    } finally {
      await gateway?.stop();
      await registry.stop();
    }
  });
});
