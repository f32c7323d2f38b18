// docker, podman and skopeo through a gateway started with `--auth upstream`, in front of the real
// registry signing users in itself: with `auth: htpasswd` (its Basic challenge and 401 passed on) and
// with `auth: token` (its Bearer challenge's realm moved onto the gateway, the token service reached
// through the gateway). The gateway runs as users run it (`serve`, a process of its own).
//
// Docker skips certificate verification for registries on 127.0.0.0/8, so the gateway listens on
// this machine's non-loopback address, under names /etc/hosts maps there; every client trusts the
// test CA the way users do it: Docker in /etc/docker/certs.d/HOST:PORT, podman and skopeo in
// /etc/containers/certs.d/HOST:PORT (each under a name of its own, so neither borrows the other's).
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerCli, dockerRoundTrip, mapHostName, nonLoopbackAddress, removeDockerTraces, startDockerEngine, trustCaForDocker, type DockerCli } from '../helpers/docker.js';
import { jsonLogLines, spawnCli, type CliProcess } from '../helpers/gateway-process.js';
import { writeHtpasswd, type HtpasswdUser } from '../helpers/htpasswd.js';
import { makeTar, readOciLayout, writeOciLayout, type WrittenOciImage } from '../helpers/oci-layout.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { podmanCli, podmanPushPull, trustCaForContainers, type PodmanCli } from '../helpers/podman.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { startTokenRegistry } from '../helpers/token-registry.js';
import { freePort, requireTool, run, type RunResult } from '../helpers/tools.js';
import { eventually, sleep } from '../helpers/wait.js';

const ALICE: HtpasswdUser = { user: 'alice', password: 'alice upstream: secret', algorithm: 'bcrypt', cost: 4 };
const WRONG_PASSWORD = 'not-alices-password';
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function collect(resolve: (a: Answer) => void, reject: (e: Error) => void) {
  return (res: import('node:http').IncomingMessage) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c));
    res.once('error', reject);
    res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
  };
}

/** A GET over plain HTTP (the registry behind the gateway, asked directly). */
function httpGet(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, collect(resolve, reject));
    req.once('error', reject);
    req.end();
  });
}

/** The gateway as a `serve` process on ADDRESS:PORT, with `--auth upstream`. */
interface UpstreamAuthGateway {
  readonly port: number;
  readonly cli: CliProcess;
  /** `NAME:PORT`, the registry host clients put in image names. */
  hostPort(name: string): string;
  /** One HTTPS GET, verified against the test CA for `name`. */
  get(path: string, name: string, headers?: Record<string, string>): Promise<Answer>;
  /** The JSON lines it logged so far. */
  logLines(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

describe('--auth upstream: docker, podman and skopeo sign in at the registry itself', { timeout: 240_000 }, () => {
  let work: string;
  let address: string;
  let pki: TestPki;
  let docker: DockerCli;
  let podman: PodmanCli | undefined;
  let skopeo: string;
  let skopeoEnv: NodeJS.ProcessEnv;
  let skopeoPolicy: string;
  let layout: string;
  let skopeoImage: WrittenOciImage;
  // Docker's name, podman's and skopeo's name, and a name nobody trusts; all on `address`.
  const names = (() => {
    const id = randomBytes(3).toString('hex');
    return { docker: `docker-${id}.rgw.test`, containers: `containers-${id}.rgw.test`, untrusted: `untrusted-${id}.rgw.test` };
  })();
  let mappedAt = 0;
  /**
   * The Docker engine, a Go program, reads /etc/hosts again at most every 5 s: it resolves the
   * names mapped at the start once that long has passed.
   */
  const engineSeesNames = () => sleep(Math.max(0, mappedAt + 5_500 - Date.now()));
  const cleanups: Array<() => Promise<void>> = [];
  const dockerImages: string[] = [];
  const dockerLogins: string[] = [];

  const skopeoRun = (args: string[], input?: string): Promise<RunResult> =>
    run(skopeo, ['--policy', skopeoPolicy, ...args], { env: skopeoEnv, timeoutMs: 120_000, ...(input === undefined ? {} : { input }) });
  const ok = (what: string, r: RunResult): RunResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  /**
   * What a docker user does against `host`: a wrong password refused (stderr matching `refused`),
   * then login, push of a new image `host/REPO:1`, removal and pull; resolves with the pushed digest.
   */
  const roundTrip = (host: string, repo: string, refused: RegExp): Promise<string> =>
    dockerRoundTrip(docker, {
      host, repo, user: ALICE.user, password: ALICE.password, wrongPassword: WRONG_PASSWORD, refused,
      rootfsTar: join(work, 'rootfs.tar'), images: dockerImages, logins: dockerLogins,
    });

  const startGateway = async (upstream: string): Promise<UpstreamAuthGateway> => {
    const port = await freePort(address);
    const cli = spawnCli(
      [
        'serve', '--listen', `${address}:${port}`, '--upstream', upstream, '--auth', 'upstream',
        '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--public-url', `https://${names.docker}:${port}`,
        '--workers', '1', '--log-level', 'info',
      ],
      { cwd: work, stdin: 'ignore' },
    );
    const get = (path: string, name: string, headers: Record<string, string> = {}): Promise<Answer> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(
          { host: address, port, path, headers: { host: `${name}:${port}`, ...headers }, ca: pki.caPem, servername: name, agent: false },
          collect(resolve, reject),
        );
        req.once('error', reject);
        req.end();
      });
    const ready = await eventually(async () => {
      if (!cli.alive()) return true;
      return (await get('/healthz', names.docker).catch(() => null))?.status === 200;
    }, 30_000, 100);
    if (!ready || !cli.alive()) {
      await cli.kill();
      throw new Error(`the gateway did not serve /healthz on ${address}:${port}:\n${cli.output()}`);
    }
    const gateway: UpstreamAuthGateway = {
      port,
      cli,
      hostPort: (name) => `${name}:${port}`,
      get,
      logLines: () => jsonLogLines(cli.output()),
      stop: async () => {
        await cli.stop();
      },
    };
    cleanups.push(() => gateway.stop());
    return gateway;
  };

  beforeAll(async () => {
    const dockerHost = await startDockerEngine();
    // Lower case throughout (no mkdtemp): podman names an image pulled from oci:DIR after DIR.
    work = join(tmpdir(), `rgw-upstream-auth-${randomBytes(6).toString('hex')}`);
    await mkdir(work, { mode: 0o700 });
    address = nonLoopbackAddress();
    for (const name of Object.values(names)) cleanups.push(await mapHostName(name, address));
    mappedAt = Date.now();
    pki = await makeTestPki(join(work, 'pki'), { hosts: [...Object.values(names), 'localhost'], ips: [address, '127.0.0.1'] });

    await mkdir(join(work, 'docker-config'));
    docker = dockerCli(dockerHost, join(work, 'docker-config'));
    await writeFile(join(work, 'rootfs.tar'), makeTar({ 'etc/upstream-auth': `registry-gateway --auth upstream test ${randomBytes(8).toString('hex')}\n` }));

    podman = await podmanCli(join(work, 'podman'));
    skopeo = requireTool('skopeo');
    await mkdir(join(work, 'skopeo'));
    ({ env: skopeoEnv, policy: skopeoPolicy } = await skopeoSandbox(join(work, 'skopeo')));
    // podman's image and skopeo's: different layers, or skopeo would reuse the ones podman pushed
    // (same content, compressed by podman) and send a manifest of its own making.
    layout = join(work, 'layout');
    await writeOciLayout(layout, { tag: 'podman', layers: [{ 'opt/app/data.bin': randomBytes(64 * 1024) }, { 'opt/app/VERSION': '1\n' }] });
    skopeoImage = await writeOciLayout(layout, { tag: 'skopeo', layers: [{ 'opt/app/data.bin': randomBytes(64 * 1024) }, { 'opt/app/VERSION': '2\n' }] });
  }, 300_000);

  afterAll(async () => {
    await removeDockerTraces(docker, dockerImages, undefined);
    for (const host of dockerLogins) await docker?.run(['logout', host]);
    await podman?.remove();
    // Gateways and registries stop, hosts lines and trust go: last in, first out.
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => console.error(err));
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }, 120_000);

  describe('in front of a registry with auth: htpasswd', () => {
    let registry: TestRegistry;
    let gateway: UpstreamAuthGateway;
    const alice = () => `Basic ${Buffer.from(`${ALICE.user}:${ALICE.password}`).toString('base64')}`;

    beforeAll(async () => {
      const htpasswd = join(work, 'registry-htpasswd');
      await writeHtpasswd(htpasswd, [ALICE]);
      registry = await startRegistry({ htpasswdFile: htpasswd, parentDir: work });
      cleanups.push(() => registry.stop());
      gateway = await startGateway(registry.url);
      cleanups.push(await trustCaForDocker(gateway.hostPort(names.docker), pki.caPem));
      cleanups.push(await trustCaForContainers(gateway.hostPort(names.containers), pki.caPem));
      await engineSeesNames();
    }, 120_000);

    it("is ready while the registry asks for its login, and passes the registry's Basic challenge on", async () => {
      expect((await gateway.get('/readyz', names.docker)).status).toBe(200);
      const challenge = await gateway.get('/v2/', names.docker);
      expect(challenge.status).toBe(401);
      expect(challenge.headers['www-authenticate']).toBe('Basic realm="test"');
      expect((await gateway.get('/v2/', names.docker, { authorization: alice() })).status).toBe(200);
    });

    it('is verified by every client: a name whose CA they were not given is refused', async () => {
      const untrusted = gateway.hostPort(names.untrusted);
      const dockerLogin = await docker.run(['login', untrusted, '--username', ALICE.user, '--password-stdin'], `${ALICE.password}\n`);
      expect(dockerLogin.code).not.toBe(0);
      expect(dockerLogin.stderr).toMatch(/x509: certificate signed by unknown authority/);
      const podmanLogin = await podman!.run(['login', '--username', ALICE.user, '--password-stdin', untrusted], `${ALICE.password}\n`);
      expect(podmanLogin.code).not.toBe(0);
      expect(podmanLogin.stderr).toMatch(/x509: certificate signed by unknown authority/);
    });

    it('docker: the registry refuses a wrong password; login, push and pull', async () => {
      const digest = await roundTrip(gateway.hostPort(names.docker), 'team/docker', /401 Unauthorized/);

      // The registry holds it, and only lets alice see it.
      const stored = await httpGet(`${registry.url}/v2/team/docker/manifests/1`, { accept: MANIFEST_TYPES, authorization: alice() });
      expect(stored.status).toBe(200);
      expect(stored.headers['docker-content-digest']).toBe(digest);
      expect((await httpGet(`${registry.url}/v2/team/docker/manifests/1`, { accept: MANIFEST_TYPES })).status).toBe(401);
    });

    it('podman: the registry refuses a wrong password; login, push and pull', async () => {
      const host = gateway.hostPort(names.containers);
      const wrong = await podman!.run(['login', '--username', ALICE.user, '--password-stdin', host], `${WRONG_PASSWORD}\n`);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/invalid username\/password/);

      const login = await podman!.ok(['login', '--username', ALICE.user, '--password-stdin', host], `${ALICE.password}\n`);
      expect(login.stdout).toContain('Login Succeeded');
      // An image in podman's storage, from the OCI layout, pushed and pulled back the same.
      const image = `${host}/team/podman:1`;
      const { digest } = await podmanPushPull(podman!, `oci:${layout}:podman`, image, work);
      const stored = await httpGet(`${registry.url}/v2/team/podman/manifests/1`, { accept: MANIFEST_TYPES, authorization: alice() });
      expect(stored.headers['docker-content-digest']).toBe(digest);
    });

    it('skopeo: the registry refuses a wrong password; login, copy in and out', async () => {
      const host = gateway.hostPort(names.containers);
      const wrong = await skopeoRun(['login', '--username', ALICE.user, '--password-stdin', host], `${WRONG_PASSWORD}\n`);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/invalid username\/password/);

      ok('skopeo login', await skopeoRun(['login', '--username', ALICE.user, '--password-stdin', host], `${ALICE.password}\n`));
      ok('skopeo copy (push)', await skopeoRun(['copy', `oci:${layout}:skopeo`, `docker://${host}/team/skopeo:1`]));
      const out = join(work, 'skopeo-out');
      ok('skopeo copy (pull)', await skopeoRun(['copy', `docker://${host}/team/skopeo:1`, `oci:${out}:pulled`]));
      const pulled = await readOciLayout(out, 'pulled'); // every blob checked against its digest
      expect(pulled.manifestDigest).toBe(skopeoImage.manifestDigest);
      expect(pulled.layerDigests).toEqual(skopeoImage.layerDigests);
    });

    it('forwarded the credentials: the registry signed alice in, and the gateway logged each push', () => {
      // distribution logs the user it authenticated on each request it served.
      expect(registry.log()).toMatch(/auth\.user\.name="?alice"?/);
      const puts = gateway.logLines().filter((l) => l.method === 'PUT' && typeof l.path === 'string' && /^\/v2\/team\/[a-z]+\/manifests\/1$/.test(l.path));
      // Each names the user the credentials claimed, marked as never checked by the gateway.
      expect(puts.map((l) => [l.path, l.status, l.user, l.userVerified])).toEqual(
        expect.arrayContaining([
          ['/v2/team/docker/manifests/1', 201, 'alice', false],
          ['/v2/team/podman/manifests/1', 201, 'alice', false],
          ['/v2/team/skopeo/manifests/1', 201, 'alice', false],
        ]),
      );
      // Neither the password nor the Authorization header reaches the log.
      expect(gateway.cli.output()).not.toContain(ALICE.password);
      expect(gateway.cli.output()).not.toContain(alice().slice('Basic '.length));
    });
  });

  describe('in front of a registry with token auth', () => {
    let tokens: Awaited<ReturnType<typeof startTokenRegistry>>;
    let gateway: UpstreamAuthGateway;

    beforeAll(async () => {
      const dir = join(work, 'token');
      await mkdir(dir);
      tokens = await startTokenRegistry(dir, { [ALICE.user]: ALICE.password });
      cleanups.push(() => tokens.stop());
      gateway = await startGateway(tokens.origin);
      cleanups.push(await trustCaForDocker(gateway.hostPort(names.docker), pki.caPem));
      await engineSeesNames();
    }, 120_000);

    it("passes the registry's Bearer challenge with its realm moved onto the gateway", async () => {
      const challenge = await gateway.get('/v2/', names.docker);
      expect(challenge.status).toBe(401);
      const header = String(challenge.headers['www-authenticate']);
      expect(header).toMatch(/^Bearer /);
      expect(header).toContain(`realm="https://${gateway.hostPort(names.docker)}${new URL(tokens.realm).pathname}"`);
      expect(header).toContain(`service="${tokens.service}"`);
    });

    it('docker: the token service refuses a wrong password; login, push and pull complete the token flow through the gateway', async () => {
      await roundTrip(gateway.hostPort(names.docker), 'team/token', /unauthorized|401/i);

      // Docker fetched its tokens from the realm on the gateway, which passed them on.
      const tokenPath = new URL(tokens.realm).pathname;
      const lines = gateway.logLines();
      expect(lines.filter((l) => typeof l.path === 'string' && l.path.startsWith(tokenPath) && l.status === 200).length).toBeGreaterThan(0);
      // The push came with a bearer token: the log names its subject, unverified.
      expect(lines).toContainEqual(expect.objectContaining({ method: 'PUT', path: '/v2/team/token/manifests/1', status: 201, user: 'alice', userVerified: false }));
      expect(tokens.tokenRequests().filter((r) => r.user === ALICE.user && r.status === 200).length).toBeGreaterThan(0);
    });
  });
});
