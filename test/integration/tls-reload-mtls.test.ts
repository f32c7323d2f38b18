// Certificate renewal without a restart, and mutual TLS with client certificates.
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { writeOciLayout } from '../helpers/oci-layout.js';
import { issueCert, makeMismatchedPair, makeTestPki, type TestPki } from '../helpers/pki.js';
import { requireTool, run } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';

const names = { hosts: ['localhost'], ips: ['127.0.0.1'] };

/** The serial number of the certificate a new TLS connection to the gateway is served. */
function servedSerial(stack: TestStack): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: stack.gateway.port, ca: stack.pki.caPem, servername: 'localhost' }, () => {
      resolve(socket.getPeerX509Certificate()!.serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

async function replaceFile(file: string, content: string): Promise<void> {
  await writeFile(`${file}.new`, content, { mode: 0o600 });
  await rename(`${file}.new`, file);
}


describe('certificate renewal while serving', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack.stop());

  it('serves a renewed pair to new connections with no failed request, and keeps the old one when the new pair is broken', async () => {
    const before = await servedSerial(stack);
    // Requests keep running through the swap: none may fail.
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      while (!stop) statuses.push((await stack.request('/v2/')).status);
    })();

    const renewed = await issueCert(stack.pki, 'renewed', names);
    await replaceFile(stack.pki.serverCert, await readFile(renewed.cert, 'utf8'));
    await replaceFile(stack.pki.serverKey, await readFile(renewed.key, 'utf8'));
    expect(await eventually(async () => (await servedSerial(stack)) !== before, 3_000, 100)).toBe(true);
    const after = await servedSerial(stack);
    expect(after).not.toBe(before);
    stop = true;
    await load;
    expect(statuses.length).toBeGreaterThan(5);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(stack.logLines()).toContainEqual(expect.objectContaining({ msg: 'certificate reloaded for new connections' }));

    const broken = await makeMismatchedPair(stack.pki, names);
    await replaceFile(stack.pki.serverKey, await readFile(broken.key, 'utf8'));
    expect(await eventually(async () => stack.logLines().some((l) => l.msg === 'certificate not reloaded: keeping the previous one'), 3_000, 100)).toBe(true);
    expect(await servedSerial(stack)).toBe(after);
    expect((await stack.request('/v2/')).status).toBe(200);
  });

  it('reloads on demand (what SIGHUP does)', async () => {
    const before = await servedSerial(stack);
    const renewed = await issueCert(stack.pki, 'renewed-again', names);
    await replaceFile(stack.pki.serverCert, await readFile(renewed.cert, 'utf8'));
    await replaceFile(stack.pki.serverKey, await readFile(renewed.key, 'utf8'));
    expect(await stack.gateway.reload()).toBe(true);
    expect(await servedSerial(stack)).not.toBe(before);
  });
});

describe('mutual TLS (--tls-client-ca)', () => {
  let clients: TestPki;
  let stack: TestStack;
  let dir: string;
  let good: { cert: string; key: string };
  let foreign: { cert: string; key: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rgw-mtls-'));
    clients = await makeTestPki(join(dir, 'clients'), names);
    const issued = await issueCert(clients, 'ci-robot', { hosts: [], ips: [], commonName: 'ci-robot', extendedKeyUsage: 'clientAuth' });
    good = { cert: await readFile(issued.leafCert, 'utf8'), key: await readFile(issued.key, 'utf8') };
    stack = await startTestStack({ extraArgs: ['--tls-client-ca', clients.caCert] });
    const other = await issueCert(stack.pki, 'not-a-client', { hosts: [], ips: [], commonName: 'intruder', extendedKeyUsage: 'clientAuth' });
    foreign = { cert: await readFile(other.leafCert, 'utf8'), key: await readFile(other.key, 'utf8') };
  });
  afterAll(async () => {
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function get(path: string, options: { cert?: string; key?: string; auth?: boolean }): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(path, stack.url), {
        ca: stack.pki.caPem,
        agent: false,
        ...(options.cert ? { cert: options.cert, key: options.key } : {}),
        headers: options.auth === false ? {} : { authorization: stack.authorization() },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('lets in a client with a certificate from that CA, and basic auth still applies', async () => {
    expect(await get('/v2/', good)).toBe(200);
    expect(await get('/v2/', { ...good, auth: false })).toBe(401);
  });

  it('refuses the connection without a client certificate, or with one from another CA', async () => {
    await expect(get('/v2/', {})).rejects.toThrow();
    await expect(get('/healthz', {})).rejects.toThrow();
    await expect(get('/v2/', foreign)).rejects.toThrow();
  });

  it('works for skopeo with the client pair beside ca.crt in its certificate folder', async () => {
    const skopeo = requireTool('skopeo');
    const certDir = join(dir, 'skopeo-certs');
    await mkdir(certDir);
    await copyFile(stack.pki.caCert, join(certDir, 'ca.crt'));
    await writeFile(join(certDir, 'client.cert'), good.cert);
    await writeFile(join(certDir, 'client.key'), good.key, { mode: 0o600 });
    await writeOciLayout(join(dir, 'layout'), { tag: '1', layers: [{ 'hello.txt': 'hello over mutual TLS\n' }] });
    const env = { ...process.env, HOME: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json') };
    const creds = `${stack.users[0]!.user}:${stack.users[0]!.password}`;
    const pushed = await run(skopeo, ['copy', '--dest-cert-dir', certDir, '--dest-creds', creds, `oci:${join(dir, 'layout')}:1`, `docker://${stack.host}/mtls/app:1`], { env });
    expect(pushed.stderr).toBe('');
    expect(pushed.code).toBe(0);
    await rm(join(certDir, 'client.cert'));
    await rm(join(certDir, 'client.key'));
    const refused = await run(skopeo, ['inspect', '--cert-dir', certDir, '--creds', creds, `docker://${stack.host}/mtls/app:1`], { env });
    expect(refused.code).not.toBe(0);
  });
});
