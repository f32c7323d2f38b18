// docker and skopeo through a gateway started with `serve --acme`, whose certificate comes from an
// ACME CA (Debian's pebble), trusting that CA's root and nothing else: no CA of the gateway's own
// exists in ACME mode, so nothing else could be trusted.
//
// Docker skips certificate verification for registries on 127.0.0.0/8, so the gateway listens on
// this machine's non-loopback address, under a name /etc/hosts maps there; pebble's DNS answers
// every name with that address too (`address`), so pebble validates TLS-ALPN-01 on the gateway's own
// listener. Docker trusts pebble's root in /etc/docker/certs.d/HOST:PORT/ca.crt, skopeo through
// --cert-dir; the gateway serves its leaf with pebble's intermediate, and pebble's chain stops below
// the root, so the root alone completes it. A certificate folder without the root is refused.
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerCli, dockerRoundTrip, mapHostName, nonLoopbackAddress, removeDockerTraces, startDockerEngine, trustCaForDocker, type DockerCli } from '../helpers/docker.js';
import { jsonLogLines, spawnCli, type CliProcess } from '../helpers/gateway-process.js';
import { writeHtpasswd, type HtpasswdUser } from '../helpers/htpasswd.js';
import { makeTar, readOciLayout, writeOciLayout, type WrittenOciImage } from '../helpers/oci-layout.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { freePort, requireTool, run, type RunResult } from '../helpers/tools.js';
import { eventually, sleep } from '../helpers/wait.js';

const ALICE: HtpasswdUser = { user: 'alice', password: 'alice acme: secret', algorithm: 'bcrypt', cost: 4 };
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

interface Served {
  /** The chain the gateway sent, leaf first, as far as it went (not the trust anchor the client added). */
  chain: X509Certificate[];
  authorized: boolean;
  authorizationError: string | null;
}

describe('serve --acme: docker and skopeo trust the gateway through the ACME CA root alone', { timeout: 300_000 }, () => {
  let work: string;
  let address: string;
  let name: string;
  let port: number;
  let pebble: Pebble;
  let registry: TestRegistry;
  let gateway: CliProcess;
  let root: string;
  let docker: DockerCli;
  let skopeo: string;
  let skopeoEnv: NodeJS.ProcessEnv;
  let skopeoPolicy: string;
  let layout: string;
  let skopeoImage: WrittenOciImage;
  let mappedAt = 0;
  const cleanups: Array<() => Promise<void>> = [];
  let tornDown = false;
  // beforeAll, timed out, goes on in the background after afterAll: what it starts from then on is
  // undone at once instead of staying behind (a gateway, pebble, a hosts line).
  const cleanup = (undo: () => Promise<void>): void => {
    if (tornDown) void undo().catch((err: unknown) => console.error(err));
    else cleanups.push(undo);
  };
  const dockerImages: string[] = [];
  const dockerLogins: string[] = [];

  const host = () => `${name}:${port}`;
  const skopeoRun = (args: string[]): Promise<RunResult> => run(skopeo, ['--policy', skopeoPolicy, ...args], { env: skopeoEnv, timeoutMs: 120_000 });
  const ok = (what: string, r: RunResult): RunResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const creds = () => `${ALICE.user}:${ALICE.password}`;

  /** A TLS handshake with the gateway as `name`, verified against `ca` alone (Node's own roots left out). */
  const handshake = (ca: string): Promise<Served> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: address, port, servername: name, ca, rejectUnauthorized: false }, () => {
        const chain: X509Certificate[] = [];
        for (let c = socket.getPeerX509Certificate(); c !== undefined && !chain.some((seen) => seen.fingerprint256 === c!.fingerprint256); c = c.issuerCertificate) chain.push(c);
        const error = socket.authorizationError;
        resolve({ chain, authorized: socket.authorized, authorizationError: error === null || error === undefined ? null : String(error) });
        socket.end();
      });
      socket.once('error', reject);
    });

  /** GET `path` on the gateway as `name`, verified against `ca`. */
  const get = (path: string, ca: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: address, port, path, servername: name, headers: { host: host() }, ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.once('error', reject);
      req.end();
    });

  /** The registry behind the gateway, asked directly over plain HTTP. */
  const stored = (repo: string, tag: string): Promise<{ status: number; digest: string | undefined }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(`${registry.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: MANIFEST_TYPES }, agent: false }, (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode ?? 0, digest: res.headers['docker-content-digest'] as string | undefined }));
      });
      req.once('error', reject);
      req.end();
    });

  beforeAll(async () => {
    const engine = await startDockerEngine();
    work = join(tmpdir(), `rgw-acme-e2e-${randomBytes(6).toString('hex')}`);
    await mkdir(work, { mode: 0o700 });
    cleanup(() => rm(work, { recursive: true, force: true }));
    address = nonLoopbackAddress();
    name = `acme-${randomBytes(3).toString('hex')}.rgw.test`;
    cleanup(await mapHostName(name, address));
    mappedAt = Date.now();

    await writeHtpasswd(join(work, 'htpasswd'), [ALICE]);
    registry = await startRegistry({ parentDir: work });
    cleanup(() => registry.stop());

    port = await freePort(address);
    // Pebble resolves every name to `address`: it validates TLS-ALPN-01 on the gateway's listener.
    pebble = await startPebble({ tlsPort: port, httpPort: await freePort(), address, parentDir: work });
    cleanup(() => pebble.stop());
    // In `work`, so that the ACME account, key and certificate go to work/certs/acme.
    gateway = spawnCli(
      [
        'serve', '--listen', `${address}:${port}`, '--upstream', registry.url, '--htpasswd', join(work, 'htpasswd'),
        '--acme', pebble.directoryUrl, '--acme-ca-cert', pebble.caCertFile, '--acme-domains', name, '--acme-email', 'ops@rgw.test',
        '--workers', '1', '--log-level', 'info',
      ],
      { cwd: work, stdin: 'ignore' },
    );
    cleanup(async () => void (await gateway.stop()));
    // The first attempt ends in one of two lines; a failed one is retried only a minute later.
    const outcome = () => /ACME certificate (issued|not issued)/.exec(gateway.output())?.[1];
    await eventually(() => outcome() !== undefined || !gateway.alive(), 60_000, 100);
    if (outcome() !== 'issued') {
      throw new Error(`serve --acme got no certificate from pebble (validating on ${address}:${port}):\n${gateway.output()}\n${pebble.output()}`);
    }
    root = await pebble.rootPem();
    cleanup(await trustCaForDocker(host(), root));

    await mkdir(join(work, 'docker-config'));
    docker = dockerCli(engine, join(work, 'docker-config'));
    await writeFile(join(work, 'rootfs.tar'), makeTar({ 'etc/acme': `registry-gateway --acme test ${randomBytes(8).toString('hex')}\n` }));

    skopeo = requireTool('skopeo');
    await mkdir(join(work, 'skopeo'));
    ({ env: skopeoEnv, policy: skopeoPolicy } = await skopeoSandbox(join(work, 'skopeo')));
    // skopeo's --cert-dir: *.crt files are CAs; pebble's root, and a folder without it.
    await mkdir(join(work, 'pebble-root'));
    await writeFile(join(work, 'pebble-root', 'ca.crt'), root);
    await mkdir(join(work, 'no-root'));
    layout = join(work, 'layout');
    skopeoImage = await writeOciLayout(layout, { tag: 'skopeo', layers: [{ 'opt/app/data.bin': randomBytes(64 * 1024) }, { 'opt/app/VERSION': '1\n' }] });

    // The Docker engine, a Go program, reads /etc/hosts again at most every 5 s.
    await sleep(Math.max(0, mappedAt + 5_500 - Date.now()));
  }, 300_000);

  afterAll(async () => {
    tornDown = true;
    // A failure here must not keep the processes below alive.
    await removeDockerTraces(docker, dockerImages, undefined).catch((err: unknown) => console.error(err));
    for (const login of dockerLogins) await docker?.run(['logout', login]).catch((err: unknown) => console.error(err));
    // Gateway, pebble, registry, trust, hosts line and the folder go: last in, first out.
    for (const undo of cleanups.reverse()) await undo().catch((err: unknown) => console.error(err));
  }, 120_000);

  it("serves pebble's certificate for the name with pebble's intermediate, so pebble's root alone verifies it", async () => {
    expect(gateway.output()).toContain(`ACME tls-alpn-01 challenge for ${name}`);
    const intermediate = new X509Certificate(await pebble.intermediatePem());
    const served = await handshake(root);
    expect(served.authorizationError).toBeNull();
    expect(served.authorized).toBe(true);
    const [leaf, next] = served.chain;
    expect(leaf!.subjectAltName).toBe(`DNS:${name}`);
    expect(leaf!.checkIssued(intermediate)).toBe(true);
    // The intermediate came from the gateway: the client had only the root.
    expect(next?.fingerprint256).toBe(intermediate.fingerprint256);
    expect((await get('/readyz', root)).status).toBe(200);
    // ACME mode makes no CA of its own that a client could be told to trust.
    // (Beside the ACME folder only what the gateway keeps in any mode: the web UI's session secret
    // and the record of events.)
    expect((await readdir(join(work, 'certs'))).sort()).toEqual(['acme', 'events.jsonl', 'session.key']);
  });

  it("skopeo refuses the certificate without pebble's root", async () => {
    const refused = await skopeoRun(['inspect', '--cert-dir', join(work, 'no-root'), '--creds', creds(), `docker://${host()}/team/none:1`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/x509: certificate signed by unknown authority/);
  });

  it("docker, trusting pebble's root in certs.d: a wrong password refused; login, push and pull", async () => {
    const digest = await dockerRoundTrip(docker, {
      host: host(), repo: 'team/docker', user: ALICE.user, password: ALICE.password, wrongPassword: 'not-alices-password', refused: /401 Unauthorized/,
      rootfsTar: join(work, 'rootfs.tar'), images: dockerImages, logins: dockerLogins,
    });
    expect(await stored('team/docker', '1')).toEqual({ status: 200, digest });
    expect(jsonLogLines(gateway.output())).toContainEqual(expect.objectContaining({ method: 'PUT', path: '/v2/team/docker/manifests/1', status: 201, user: ALICE.user }));
  });

  it("skopeo, with pebble's root in --cert-dir: copies an image in and out", async () => {
    const certDir = join(work, 'pebble-root');
    const ref = `docker://${host()}/team/skopeo:1`;
    ok('skopeo copy (push)', await skopeoRun(['copy', '--dest-cert-dir', certDir, '--dest-creds', creds(), `oci:${layout}:skopeo`, ref]));
    expect(await stored('team/skopeo', '1')).toEqual({ status: 200, digest: skopeoImage.manifestDigest });
    const out = join(work, 'skopeo-out');
    ok('skopeo copy (pull)', await skopeoRun(['copy', '--src-cert-dir', certDir, '--src-creds', creds(), ref, `oci:${out}:pulled`]));
    const pulled = await readOciLayout(out, 'pulled'); // every blob checked against its digest
    expect(pulled.manifestDigest).toBe(skopeoImage.manifestDigest);
    expect(pulled.layerDigests).toEqual(skopeoImage.layerDigests);
  });
});
