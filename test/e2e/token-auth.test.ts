// docker, podman, skopeo and containerd's ctr through a gateway started with `--auth token`, in
// front of the real registry: the gateway is the token service (`/token`) and checks the bearer
// tokens on /v2/. What a user notices: `docker login` keeps a refresh token (`identitytoken`), not
// the password; requests without credentials are the `@anonymous` principal of the access file, so
// public/* pulls without a login and nothing else; a new password ends the stored refresh token
// within the htpasswd reload time, and a login with the new password works again.
//
// The gateway runs as users run it (`serve`, a process of its own). Docker skips certificate
// verification for registries on 127.0.0.0/8, so the gateway listens on this machine's
// non-loopback address, under names /etc/hosts maps there; every client trusts the test CA the way
// users do it: Docker in /etc/docker/certs.d/HOST:PORT, podman and skopeo in
// /etc/containers/certs.d/HOST:PORT, ctr with --tlscacert. The token realm follows the name each
// client used (no --public-url), so the token requests are verified against the same CA.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { dockerCli, importDockerImage, mapHostName, nonLoopbackAddress, removeDockerTraces, startDockerEngine, trustCaForDocker, type DockerCli } from '../helpers/docker.js';
import { GATEWAY_BIN, jsonLogLines, startGatewayProcess, type GatewayProcess, type LogLine } from '../helpers/gateway-process.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { makeTar, readOciLayout, writeOciLayout, type WrittenOciImage } from '../helpers/oci-layout.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { podmanCli, podmanPushPull, trustCaForContainers, type PodmanCli } from '../helpers/podman.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { requireTool, run, runOk, type RunResult } from '../helpers/tools.js';
import { eventually, sleep } from '../helpers/wait.js';

const USER = 'alice';
// A space and a colon: clients that split `user:password` at the first colon must keep the rest.
const FIRST_PASSWORD = 'alice token: secret 1';
const NEW_PASSWORD = 'alice token: secret 2';
const ACCESS = `rules:
  - users: ["@anonymous"]
    repositories: ["public/*"]
    actions: [pull]
  - users: [${USER}]
    repositories: ["*"]
    actions: [pull, push, delete]
`;
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
// What docker, podman and skopeo print when the gateway refuses a token's scope (401 with
// error="insufficient_scope": the clients read it as "denied").
const DENIED = 'denied: requested access to the resource is denied';
// The gateway's words for a refresh token it no longer takes.
const REFRESH_REFUSED = 'refresh token not accepted; log in again';

interface DockerConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string; [key: string]: unknown }>;
}

describe('--auth token: the gateway is the token service for docker, podman, skopeo and ctr', { timeout: 300_000 }, () => {
  let work: string;
  let address: string;
  let pki: TestPki;
  let registry: TestRegistry;
  let gateway: GatewayProcess;
  let htpasswdFile: string;
  let docker: DockerCli;
  let dockerConfigFile: string;
  let podman: PodmanCli | undefined;
  let skopeo: string;
  let skopeoEnv: NodeJS.ProcessEnv;
  let skopeoPolicy: string;
  let layout: string;
  let seedImage: WrittenOciImage;
  let skopeoImage: WrittenOciImage;
  // alice's password as the htpasswd file has it now.
  let password = FIRST_PASSWORD;
  // Docker's name, and podman's, skopeo's and ctr's name; both on `address`.
  const names = (() => {
    const id = randomBytes(3).toString('hex');
    return { docker: `docker-${id}.rgw.test`, containers: `containers-${id}.rgw.test` };
  })();
  let mappedAt = 0;
  const cleanups: Array<() => Promise<void>> = [];
  const dockerImages: string[] = [];

  const dockerHost = () => `${names.docker}:${gateway.port}`;
  const containersHost = () => `${names.containers}:${gateway.port}`;
  const logLines = (): LogLine[] => jsonLogLines(gateway.output());
  const dockerConfig = async (): Promise<DockerConfig> => JSON.parse(await readFile(dockerConfigFile, 'utf8')) as DockerConfig;
  const dockerLogin = (secret: string) => docker.run(['login', dockerHost(), '--username', USER, '--password-stdin'], `${secret}\n`);
  const skopeoRun = (args: string[]): Promise<RunResult> => run(skopeo, ['--policy', skopeoPolicy, ...args], { env: skopeoEnv, timeoutMs: 120_000 });
  const ok = (what: string, r: RunResult): RunResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  /** The manifest of REPO:TAG as the registry behind the gateway holds it (asked directly, no credentials). */
  const stored = (repo: string, tag: string) => fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: MANIFEST_TYPES } });

  /** A one-layer image made by `docker import`, tagged `tag`; resolves with its id. */
  const importImage = (tag: string): Promise<string> => importDockerImage(docker, join(work, 'rootfs.tar'), tag, dockerImages);

  beforeAll(async () => {
    const engine = await startDockerEngine();
    // Lower case throughout (no mkdtemp): podman names an image pulled from oci:DIR after DIR.
    work = join(tmpdir(), `rgw-token-auth-${randomBytes(6).toString('hex')}`);
    await mkdir(work, { mode: 0o700 });
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    address = nonLoopbackAddress();
    for (const name of Object.values(names)) cleanups.push(await mapHostName(name, address));
    mappedAt = Date.now();
    pki = await makeTestPki(join(work, 'pki'), { hosts: [...Object.values(names), 'localhost'], ips: [address, '127.0.0.1'] });

    htpasswdFile = join(work, 'htpasswd');
    await writeHtpasswd(htpasswdFile, [{ user: USER, password, algorithm: 'bcrypt', cost: 4 }]);
    await writeFile(join(work, 'access.yml'), ACCESS);
    registry = await startRegistry({ parentDir: work });
    cleanups.push(() => registry.stop());
    gateway = await startGatewayProcess(
      [
        '--upstream', registry.url, '--auth', 'token', '--htpasswd', htpasswdFile, '--access', join(work, 'access.yml'),
        '--token-key', join(work, 'token.key'), '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey,
        '--workers', '1', '--log-level', 'info',
      ],
      { ca: pki.caPem, address, serverName: names.docker, cwd: work, stdin: 'ignore' },
    );
    cleanups.push(async () => void (await gateway.stop()));
    cleanups.push(await trustCaForDocker(dockerHost(), pki.caPem));
    cleanups.push(await trustCaForContainers(containersHost(), pki.caPem));

    await mkdir(join(work, 'docker-config'));
    dockerConfigFile = join(work, 'docker-config', 'config.json');
    docker = dockerCli(engine, join(work, 'docker-config'));
    await writeFile(join(work, 'rootfs.tar'), makeTar({ 'etc/token-auth': `registry-gateway --auth token test ${randomBytes(8).toString('hex')}\n` }));

    podman = await podmanCli(join(work, 'podman'));
    skopeo = requireTool('skopeo');
    await mkdir(join(work, 'skopeo'));
    ({ env: skopeoEnv, policy: skopeoPolicy } = await skopeoSandbox(join(work, 'skopeo')));
    // Different layers each, or a client would reuse what another pushed and send a manifest of its own making.
    layout = join(work, 'layout');
    seedImage = await writeOciLayout(layout, { tag: 'seed', layers: [{ 'opt/public/data.bin': randomBytes(32 * 1024) }] });
    await writeOciLayout(layout, { tag: 'podman', layers: [{ 'opt/app/data.bin': randomBytes(64 * 1024) }, { 'opt/app/VERSION': '1\n' }] });
    skopeoImage = await writeOciLayout(layout, { tag: 'skopeo', layers: [{ 'opt/app/data.bin': randomBytes(64 * 1024) }, { 'opt/app/VERSION': '2\n' }] });
    // A public image for the anonymous pulls of podman, skopeo and ctr, pushed by alice.
    ok('skopeo copy (seed public/seed:1)', await skopeoRun(['copy', '--dest-creds', `${USER}:${password}`, `oci:${layout}:seed`, `docker://${containersHost()}/public/seed:1`]));

    // The Docker engine, a Go program, reads /etc/hosts again at most every 5 s.
    await sleep(Math.max(0, mappedAt + 5_500 - Date.now()));
  }, 300_000);

  afterAll(async () => {
    await removeDockerTraces(docker, dockerImages, undefined);
    if (gateway !== undefined) await docker?.run(['logout', dockerHost()]);
    await podman?.remove();
    // Gateway, registry, trust, hosts lines and the folder go: last in, first out.
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => console.error(err));
  }, 120_000);

  it('challenges for a bearer token on its own /token, and grants no one a token for a wrong password', async () => {
    const challenge = await gateway.request('/v2/');
    expect(challenge.status).toBe(401);
    expect(challenge.headers['www-authenticate']).toMatch(new RegExp(`^Bearer realm="https://${dockerHost().replace(/\./g, '\\.')}/token",service="[^"]+"`));
    const wrong = await dockerLogin('not-alices-password');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout).not.toContain('Login Succeeded');
    expect(wrong.stderr).toContain(`Get "https://${dockerHost()}/v2/": unauthorized`);
  });

  describe('docker', () => {
    let privateDigest: string;
    let publicDigest: string;
    let privateId: string;

    it('docker login stores a refresh token (identitytoken) and the user name, never the password', async () => {
      const login = await dockerLogin(password);
      expect(login.code, login.stderr).toBe(0);
      expect(login.stdout).toContain('Login Succeeded');

      const text = await readFile(dockerConfigFile, 'utf8');
      const entry = (JSON.parse(text) as DockerConfig).auths?.[dockerHost()];
      expect(entry?.identitytoken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/); // a JWT
      // The `auth` field names the user only: "alice:" with nothing after the colon.
      expect(Buffer.from(entry?.auth ?? '', 'base64').toString('utf8')).toBe(`${USER}:`);
      expect(text).not.toContain(password);
      expect(text).not.toContain(Buffer.from(`${USER}:${password}`).toString('base64'));
      // The refresh token is one of the gateway's own: it says whom it was made for.
      const claims = JSON.parse(Buffer.from(entry!.identitytoken!.split('.')[1]!, 'base64url').toString('utf8')) as { sub?: string };
      expect(claims.sub).toBe(USER);
    });

    it('pushes and pulls a private image with the stored refresh token', async () => {
      const image = `${dockerHost()}/team/app:1`;
      privateId = await importImage(image);
      const push = await docker.ok(['push', image]);
      privateDigest = /1: digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)?.[1] ?? '';
      expect(privateDigest, push.stdout).toMatch(/^sha256:/);
      const publicImage = `${dockerHost()}/public/app:1`;
      await docker.ok(['tag', image, publicImage]);
      dockerImages.push(publicImage);
      publicDigest = /1: digest: (sha256:[0-9a-f]{64})/.exec((await docker.ok(['push', publicImage])).stdout)?.[1] ?? '';
      expect(publicDigest).toMatch(/^sha256:/);

      await docker.ok(['rmi', image]);
      const pull = await docker.ok(['pull', image]);
      expect(pull.stdout).toContain(`Digest: ${privateDigest}`);
      expect((await docker.ok(['image', 'inspect', '--format', '{{.Id}}', image])).stdout.trim()).toBe(privateId);
      expect((await stored('team/app', '1')).headers.get('docker-content-digest')).toBe(privateDigest);

      // The engine had no password: it traded the refresh token for access tokens (POST /token),
      // and the gateway signed each push and pull in as alice. Log lines may be up to 100 ms late.
      await eventually(() => logLines().some((l) => l.method === 'GET' && l.path === `/v2/team/app/manifests/${privateDigest}` && l.status === 200 && l.user === USER), 3_000, 50);
      const lines = logLines();
      expect(lines).toContainEqual(expect.objectContaining({ method: 'POST', path: '/token', status: 200, user: USER }));
      expect(lines).toContainEqual(expect.objectContaining({ method: 'PUT', path: '/v2/team/app/manifests/1', status: 201, user: USER }));
      expect(lines).toContainEqual(expect.objectContaining({ method: 'GET', path: `/v2/team/app/manifests/${privateDigest}`, status: 200, user: USER }));
    });

    it('after docker logout: public/* pulls anonymously; pushing there and pulling a private image are refused', async () => {
      await docker.ok(['logout', dockerHost()]);
      expect((await dockerConfig()).auths?.[dockerHost()]).toBeUndefined();

      const publicImage = `${dockerHost()}/public/app:1`;
      await docker.ok(['rmi', publicImage]);
      const pull = await docker.ok(['pull', publicImage]);
      expect(pull.stdout).toContain(`Digest: ${publicDigest}`);
      // With an anonymous token: the gateway's log names the access file's principal.
      const anonymousRead = (l: LogLine) => l.method === 'HEAD' && l.path === '/v2/public/app/manifests/1' && l.status === 200 && l.user === '@anonymous';
      expect(await eventually(() => logLines().some(anonymousRead), 10_000, 100)).toBe(true);

      const pushImage = `${dockerHost()}/public/app:2`;
      await docker.ok(['tag', publicImage, pushImage]);
      dockerImages.push(pushImage);
      const push = await docker.run(['push', pushImage]);
      expect(push.code).not.toBe(0);
      expect(push.stderr).toContain(DENIED);
      expect((await stored('public/app', '2')).status).toBe(404);

      const privateImage = `${dockerHost()}/team/app:1`;
      await docker.ok(['rmi', privateImage]);
      const refused = await docker.run(['pull', privateImage]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`pull access denied for ${dockerHost()}/team/app, repository does not exist or may require 'docker login': ${DENIED}`);
      expect((await docker.run(['image', 'inspect', privateImage])).code).not.toBe(0);
    });
  });

  describe('podman', () => {
    it('logs in, pushes and pulls a private image', async () => {
      const host = containersHost();
      const login = await podman!.ok(['login', '--username', USER, '--password-stdin', host], `${password}\n`);
      expect(login.stdout).toContain('Login Succeeded');
      // An image in podman's storage, from the OCI layout, pushed and pulled back the same.
      const image = `${host}/team/podman:1`;
      const { digest } = await podmanPushPull(podman!, `oci:${layout}:podman`, image, work);
      expect((await stored('team/podman', '1')).headers.get('docker-content-digest')).toBe(digest);
      expect(logLines()).toContainEqual(expect.objectContaining({ method: 'PUT', path: '/v2/team/podman/manifests/1', status: 201, user: USER }));
      await podman!.ok(['logout', host]);
    });

    it('without a login: pulls public/*, and is refused a private image and a push', async () => {
      const host = containersHost();
      const pulled = await podman!.ok(['pull', '--quiet', `${host}/public/seed:1`]);
      expect(pulled.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
      const [image] = JSON.parse((await podman!.ok(['image', 'inspect', `${host}/public/seed:1`])).stdout) as Array<{ Digest: string }>;
      expect(image!.Digest).toBe(seedImage.manifestDigest);

      await podman!.ok(['rmi', '--force', `${host}/team/podman:1`]); // pulled with the login above
      const refused = await podman!.run(['pull', '--quiet', `${host}/team/podman:1`]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`reading manifest 1 in ${host}/team/podman: errors:\n${DENIED}`);
      expect((await podman!.run(['image', 'exists', `${host}/team/podman:1`])).code).toBe(1);

      await podman!.ok(['tag', `${host}/public/seed:1`, `${host}/public/podman:1`]);
      const push = await podman!.run(['push', `${host}/public/podman:1`]);
      expect(push.code).not.toBe(0);
      expect(push.stderr).toContain(`initiating layer upload to /v2/public/podman/blobs/uploads/ in ${host}: errors:\n${DENIED}`);
      expect((await stored('public/podman', '1')).status).toBe(404);
    });
  });

  describe('skopeo', () => {
    it('with --creds: copies a private image in and out, and inspects it', async () => {
      const ref = `docker://${containersHost()}/team/skopeo:1`;
      const creds = `${USER}:${password}`;
      ok('skopeo copy (push)', await skopeoRun(['copy', '--dest-creds', creds, `oci:${layout}:skopeo`, ref]));
      const inspect = JSON.parse(ok('skopeo inspect', await skopeoRun(['inspect', '--creds', creds, ref])).stdout) as { Digest: string };
      expect(inspect.Digest).toBe(skopeoImage.manifestDigest);
      const out = join(work, 'skopeo-out');
      ok('skopeo copy (pull)', await skopeoRun(['copy', '--src-creds', creds, ref, `oci:${out}:pulled`]));
      const pulled = await readOciLayout(out, 'pulled'); // every blob checked against its digest
      expect(pulled.manifestDigest).toBe(skopeoImage.manifestDigest);
      expect(pulled.layerDigests).toEqual(skopeoImage.layerDigests);
    });

    it('without credentials: inspects and copies public/*, and is refused a private image and a push', async () => {
      const host = containersHost();
      const inspect = JSON.parse(ok('skopeo inspect (public)', await skopeoRun(['inspect', `docker://${host}/public/seed:1`])).stdout) as { Digest: string };
      expect(inspect.Digest).toBe(seedImage.manifestDigest);
      const out = join(work, 'skopeo-public');
      ok('skopeo copy (public)', await skopeoRun(['copy', `docker://${host}/public/seed:1`, `oci:${out}:pulled`]));
      expect((await readOciLayout(out, 'pulled')).manifestDigest).toBe(seedImage.manifestDigest);

      const refused = await skopeoRun(['inspect', `docker://${host}/team/skopeo:1`]);
      expect(refused.code).not.toBe(0);
      // skopeo logs the error as one quoted message, its newlines escaped.
      expect(refused.stderr).toContain(`reading manifest 1 in ${host}/team/skopeo: errors:\\n${DENIED}`);

      const push = await skopeoRun(['copy', `oci:${layout}:skopeo`, `docker://${host}/public/skopeo:1`]);
      expect(push.code).not.toBe(0);
      expect(push.stderr).toContain(`initiating layer upload to /v2/public/skopeo/blobs/uploads/ in ${host}: errors:\\n${DENIED}`);
      expect((await stored('public/skopeo', '1')).status).toBe(404);
    });
  });

  describe("containerd's ctr", () => {
    let containerd: Containerd;
    const caFile = () => join(pki.dir, 'ca.crt');
    const digestOf = async (ref: string): Promise<string | undefined> => {
      const list = await containerd.ctrOk(['images', 'ls']);
      const row = list.stdout.split('\n').find((line) => line.startsWith(`${ref} `));
      return /sha256:[0-9a-f]{64}/.exec(row ?? '')?.[0];
    };

    beforeAll(async () => {
      // ctr does nothing without a running containerd: one of the test's own.
      containerd = await startContainerd(join(work, 'containerd'));
      cleanups.push(() => containerd.stop());
    }, 120_000);

    it('pulls a private image with --user, and public/* without', async () => {
      const privateRef = `${containersHost()}/team/skopeo:1`;
      ok('ctr pull (private)', await containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--tlscacert', caFile(), '--user', `${USER}:${password}`, privateRef]));
      expect(await digestOf(privateRef)).toBe(skopeoImage.manifestDigest);

      const publicRef = `${containersHost()}/public/seed:1`;
      ok('ctr pull (public)', await containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--tlscacert', caFile(), publicRef]));
      expect(await digestOf(publicRef)).toBe(seedImage.manifestDigest);
    });

    it('without credentials: is refused a private image', async () => {
      const ref = `${containersHost()}/team/podman:1`;
      const refused = await containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--tlscacert', caFile(), ref]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`failed to resolve reference "${ref}": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope`);
      expect(await digestOf(ref)).toBeUndefined();
    });
  });

  describe('a new password', () => {
    it("ends docker's stored refresh token within seconds, and the gateway log says why", async () => {
      const login = await dockerLogin(password);
      expect(login.code, login.stderr).toBe(0);
      const before = (await dockerConfig()).auths?.[dockerHost()]?.identitytoken;
      expect(before).toBeDefined();
      const image = `${dockerHost()}/team/app:1`;
      dockerImages.push(image);
      await docker.ok(['pull', image]);

      // The project's own htpasswd command, as an administrator changes a password.
      await runOk(process.execPath, [GATEWAY_BIN, 'htpasswd', 'add', USER, '--file', htpasswdFile, '--password-stdin', '--cost', '4'], {
        input: `${NEW_PASSWORD}\n`,
        env: { PATH: process.env.PATH ?? '' },
      });
      password = NEW_PASSWORD;
      const changedAt = Date.now();

      // Pull with the stored token until it is refused: the gateway reads the file within about 2 s.
      let refused: RunResult | undefined;
      while (refused === undefined && Date.now() - changedAt < 30_000) {
        const pull = await docker.run(['pull', image]);
        if (pull.code !== 0) refused = pull;
        else await sleep(250);
      }
      const seconds = (Date.now() - changedAt) / 1000;
      expect(refused, 'docker pull with the old refresh token still worked 30 s after the password changed').toBeDefined();
      expect(seconds).toBeLessThan(15);
      expect(refused!.stderr).toContain(REFRESH_REFUSED);
      // Still the token of the first login: docker did not log out, the gateway stopped taking it.
      expect((await dockerConfig()).auths?.[dockerHost()]?.identitytoken).toBe(before);

      const refusedRefresh: Partial<LogLine> = {
        method: 'POST',
        path: '/token',
        status: 401,
        failureKind: 'auth',
        failure: `refresh token refused: the password of "${USER}" changed since the token was made`,
      };
      // Log lines may be up to 100 ms late.
      await eventually(() => logLines().some((l) => Object.entries(refusedRefresh).every(([k, v]) => l[k] === v)), 3_000, 50);
      const lines = logLines();
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'htpasswd file reloaded', htpasswd: htpasswdFile }));
      expect(lines).toContainEqual(expect.objectContaining(refusedRefresh));
      // The token never reaches the log.
      expect(gateway.output()).not.toContain(before!);
    });

    it('refuses the old password at login, and takes the new one: a new refresh token that pulls again', async () => {
      const old = await dockerLogin(FIRST_PASSWORD);
      expect(old.code).not.toBe(0);
      expect(old.stdout).not.toContain('Login Succeeded');
      const stale = (await dockerConfig()).auths?.[dockerHost()]?.identitytoken;

      const login = await dockerLogin(NEW_PASSWORD);
      expect(login.code, login.stderr).toBe(0);
      expect(login.stdout).toContain('Login Succeeded');
      const fresh = (await dockerConfig()).auths?.[dockerHost()]?.identitytoken;
      expect(fresh).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(fresh).not.toBe(stale);
      const pull = await docker.ok(['pull', `${dockerHost()}/team/app:1`]);
      expect(pull.stdout).toMatch(/Digest: sha256:[0-9a-f]{64}/);
    });
  });
});
