// A registry with an auth section of its own (as Debian's docker-registry package ships it) behind
// the gateway: every right password would get the registry's 401. The gateway says so: /readyz is
// 503 with the reason, `serve` warns at start, and a refused request's log line names the cause.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, basicAuthorization, startTestStack } from '../helpers/gateway.js';
import { jsonLogLines as logLines, spawnCli, spawnGateway, type GatewayWithUser, type LogLine } from '../helpers/gateway-process.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { makeTestPki } from '../helpers/pki.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { freePort, requireTool, run } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';
import { createUpstream } from '../../src/proxy/upstream.js';
import { checkUpstream } from '../../src/server/health.js';

const OWN_LOGIN = 'the registry asks for its own login (it answered /v2/ with 401, challenge Basic): turn off the auth section of its config; the gateway does authentication';
const REFUSED_ITSELF = 'the registry answered 401 itself: it has its own auth section';


const WARN = 40;

describe('a registry that asks for its own login', () => {
  let work: string;
  let registry: TestRegistry;
  let gateway: GatewayWithUser;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'rgw-own-auth-'));
    // The same user and password as the gateway's: even then the registry refuses, because the
    // gateway never passes credentials on.
    const registryHtpasswd = join(work, 'registry-htpasswd');
    await writeHtpasswd(registryHtpasswd, [ALICE]);
    registry = await startRegistry({ htpasswdFile: registryHtpasswd });
    gateway = await spawnGateway(registry.url, ['--log-level', 'info']);
  });
  afterAll(async () => {
    await gateway?.stop();
    await registry?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('warns once the gateway listens, naming the upstream, and starts all the same', async () => {
    await gateway.waitForOutput('asks for its own login');
    const lines = logLines(gateway.output());
    const warnings = lines.filter((l) => l.level === WARN && l.msg.includes('asks for its own login'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toBe(`${OWN_LOGIN} (upstream ${registry.url})`);
    expect(warnings[0]).toMatchObject({ upstream: registry.url, challenge: 'Basic' });
    const listening = lines.findIndex((l) => l.msg === 'registry-gateway listening');
    expect(listening).toBeGreaterThanOrEqual(0);
    expect(listening).toBeLessThan(lines.indexOf(warnings[0]!));
    expect(gateway.alive()).toBe(true);
    expect((await gateway.request('/healthz')).status).toBe(200);
  });

  it('is not ready: /readyz answers 503 with the reason, naming no internal address', async () => {
    const res = await gateway.request('/readyz');
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body.toString())).toEqual({ status: 'unavailable', reason: OWN_LOGIN });
    expect(res.body.toString()).not.toContain('127.0.0.1');
    expect(res.body.toString()).not.toContain(String(registry.port));
  });

  it('makes `registry-gateway healthcheck` fail with the reason', async () => {
    const cli = spawnCli(['healthcheck', '--url', `https://127.0.0.1:${gateway.port}/readyz`]);
    expect(await cli.exit).toBe(1);
    expect(cli.stderr()).toContain('answered 503');
    expect(cli.stderr()).toContain('turn off the auth section of its config');
  });

  it('answers the right gateway password with 401, and the log says the registry refused it itself', async () => {
    const res = await gateway.request('/v2/', { authorization: gateway.authorization });
    // The registry's own file has alice with this very password: its 401 also shows that the
    // gateway passed no credentials on.
    expect(res.status).toBe(401);
    // The client is told to sign in to the gateway, never sent to the registry's own realm.
    expect(res.headers['www-authenticate']).toBe('Basic realm="Registry Realm"');
    expect(await eventually(() => gateway.output().includes(REFUSED_ITSELF), 5_000)).toBe(true);
    const lines = logLines(gateway.output());
    const refusal = lines.find((l) => l.msg.startsWith(REFUSED_ITSELF))!;
    expect(refusal).toMatchObject({ level: WARN, upstream: registry.url, method: 'GET', path: '/v2/', upstreamStatus: 401, challenge: 'Basic' });
    expect(refusal.msg).toContain('turn it off');
    // Each request's access line, written once its response is done, has the registry's status too.
    const accessLine = (): LogLine | undefined => logLines(gateway.output()).find((l) => l.msg === 'request' && l.path === '/v2/' && l.user === 'alice');
    expect(await eventually(() => accessLine() !== undefined, 5_000)).toBe(true);
    expect(accessLine()).toMatchObject({ status: 401, upstreamStatus: 401 });
  });

  it('tells skopeo 401 for the right password, and warns at most once a minute', async () => {
    const skopeo = requireTool('skopeo');
    const { env, policy } = await skopeoSandbox(await mkdtemp(join(work, 'skopeo-')));
    const result = await run(
      skopeo,
      ['--policy', policy, 'inspect', '--raw', '--cert-dir', gateway.pki.trustDir, '--creds', `${ALICE.user}:${ALICE.password}`, `docker://localhost:${gateway.port}/team/app:1`],
      { env, timeoutMs: 60_000 },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/401|unauthorized/i);
    const refusedByRegistry = (): LogLine[] => logLines(gateway.output()).filter((l) => l.msg === 'request' && l.upstreamStatus === 401);
    expect(await eventually(() => refusedByRegistry().some((l) => String(l.path).startsWith('/v2/team/app/')), 5_000)).toBe(true);
    expect(gateway.output().split(REFUSED_ITSELF).length - 1).toBe(1);
  });

  it('leaves a wrong gateway password to the gateway: 401 without asking the registry', async () => {
    const before = gateway.output().split(REFUSED_ITSELF).length;
    const res = await gateway.request('/v2/wrong/tags/list', { authorization: basicAuthorization('alice', 'not-alice-secret') });
    expect(res.status).toBe(401);
    expect(await eventually(() => logLines(gateway.output()).some((l) => l.msg === 'request' && l.path === '/v2/wrong/tags/list'), 5_000)).toBe(true);
    const line = logLines(gateway.output()).find((l) => l.msg === 'request' && l.path === '/v2/wrong/tags/list')!;
    expect(line.upstreamStatus).toBeNull();
    expect(gateway.output().split(REFUSED_ITSELF).length).toBe(before);
  });

  it('counts the same 401 as ready where the registry is expected to sign users in itself', async () => {
    const upstream = createUpstream(new URL(registry.url), 5_000);
    try {
      expect(await checkUpstream(upstream)).toEqual({ ready: false, reason: OWN_LOGIN });
      expect(await checkUpstream(upstream, { ownAuthExpected: true })).toEqual({ ready: true });
    } finally {
      upstream.close();
    }
  });
});

describe('a registry not answering when the gateway starts', () => {
  let gateway: GatewayWithUser | undefined;
  afterAll(async () => {
    await gateway?.stop();
  });

  it('warns that it is not reachable yet, and serves /healthz while /readyz says 503', async () => {
    const upstream = `http://127.0.0.1:${await freePort()}`;
    gateway = await spawnGateway(upstream, ['--log-level', 'info']);
    await gateway.waitForOutput('not reachable yet');
    const warning = logLines(gateway.output()).find((l) => l.msg.includes('not reachable yet'))!;
    expect(warning).toMatchObject({ level: WARN, upstream, reason: 'ECONNREFUSED' });
    expect(warning.msg).toBe(`the upstream registry ${upstream} is not reachable yet: ECONNREFUSED; /readyz says 503 until it answers`);
    expect(gateway.output()).not.toContain('asks for its own login');
    expect((await gateway.request('/healthz')).status).toBe(200);
    const ready = await gateway.request('/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body.toString())).toEqual({ status: 'unavailable', reason: 'upstream registry unreachable: ECONNREFUSED' });
  });
});

describe('a registry that sends clients to a token server of its own', () => {
  it('is not ready: /readyz names the Bearer challenge but not the token server', async () => {
    const work = await mkdtemp(join(tmpdir(), 'rgw-own-token-'));
    try {
      const pki = await makeTestPki(join(work, 'pki'), { hosts: ['localhost'], ips: [] });
      const realm = 'http://auth.internal.example:5001/token';
      const stack = await startTestStack({ registry: { tokenAuth: { realm, rootCertBundle: pki.caCert } } });
      try {
        const ready = await stack.request('/readyz', { auth: false });
        expect(ready.status).toBe(503);
        expect(JSON.parse(ready.text)).toEqual({
          status: 'unavailable',
          reason: 'the registry asks for its own login (it answered /v2/ with 401, challenge Bearer): turn off the auth section of its config; the gateway does authentication',
        });
        expect(ready.text).not.toContain('auth.internal.example');
        const res = await stack.request('/v2/');
        expect(res.status).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Basic realm="Registry Realm"');
        const refusal = stack.logLines().find((l) => String(l.msg).startsWith(REFUSED_ITSELF));
        expect(refusal).toMatchObject({ level: WARN, challenge: 'Bearer', path: '/v2/' });
      } finally {
        await stack.stop();
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
