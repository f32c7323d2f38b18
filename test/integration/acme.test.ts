// `serve --acme` against a real ACME server (Debian's pebble) on loopback: the first certificate
// through TLS-ALPN-01 on the gateway's own port and through HTTP-01 on --acme-http-listen, /readyz
// until it arrives, and a restart that serves the stored certificate without asking the CA again.
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, type CliProcess } from '../helpers/gateway-process.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { freePort } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';

const DOMAIN = 'registry.rgw.test';

let dir: string;
let registry: TestRegistry;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-acme-'));
  await writeHtpasswd(join(dir, 'htpasswd'), [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 4 }]);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The certificate a client connecting to the gateway by DOMAIN is given, verified against `ca` (null: unverified). */
function servedCertificate(port: number, ca: string | null): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: DOMAIN, ...(ca === null ? { rejectUnauthorized: false } : { ca }) }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw));
    });
    socket.once('error', reject);
  });
}

async function readyz(port: number): Promise<{ status: number; body: string }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', servername: DOMAIN, rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

interface Started {
  gateway: CliProcess;
  port: number;
}

/** `serve --acme` in `home`, so that its certs folder (where ACME keeps its files) is home/certs. */
async function serveWithAcme(pebble: Pebble, port: number, home: string, extra: string[] = []): Promise<CliProcess> {
  await mkdir(home, { recursive: true });
  const gateway = spawnCli([
    'serve', '--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--htpasswd', join(dir, 'htpasswd'), '--workers', '1',
    '--acme', pebble.directoryUrl, '--acme-ca-cert', pebble.caCertFile, '--acme-domains', DOMAIN, '--acme-email', 'ops@rgw.test', ...extra,
  ], { cwd: home });
  await gateway.waitForOutput('registry-gateway listening', { timeoutMs: 30_000 });
  return gateway;
}

describe('serve --acme with pebble', { timeout: 180_000 }, () => {
  it('gets its first certificate through TLS-ALPN-01 on its own port, says not ready until then, and keeps it across a restart', async () => {
    const port = await freePort();
    const pebble = await startPebble({ tlsPort: port, httpPort: await freePort() });
    const certs = join(dir, 'alpn');
    let started: Started | null = null;
    try {
      const gateway = await serveWithAcme(pebble, port, certs);
      started = { gateway, port };
      await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
      expect(gateway.output()).toContain('ACME tls-alpn-01 challenge for registry.rgw.test');
      const root = await pebble.rootPem();
      const intermediate = await pebble.intermediatePem();
      const served = await servedCertificate(port, `${root}\n${intermediate}`);
      expect(served.subjectAltName).toBe(`DNS:${DOMAIN}`);
      expect((await readyz(port)).status).toBe(200);
      const stored = join(certs, 'certs', 'acme');
      expect((await stat(stored)).mode & 0o777).toBe(0o700);

      await gateway.stop();
      started = null;
      const again = await serveWithAcme(pebble, port, certs);
      started = { gateway: again, port };
      // Served at once from the files, and the CA is not asked again.
      expect((await servedCertificate(port, `${root}\n${intermediate}`)).fingerprint256).toBe(served.fingerprint256);
      expect((await readyz(port)).status).toBe(200);
      expect(again.output()).not.toContain('challenge for');
    } finally {
      await started?.gateway.stop();
      await pebble.stop();
    }
  });

  it('says not ready while the CA is down, serves a stand-in, and gets the certificate through HTTP-01 once asked again', async () => {
    const port = await freePort();
    const httpPort = await freePort();
    const pebble = await startPebble({ tlsPort: port, httpPort });
    const certs = join(dir, 'http');
    let gateway: CliProcess | null = null;
    try {
      gateway = await serveWithAcme(pebble, port, certs, ['--acme-http-listen', `127.0.0.1:${httpPort}`]);
      await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
      expect(gateway.output()).toContain('ACME http-01 challenge for registry.rgw.test');
      expect(await eventually(async () => (await readyz(port)).status === 200, 5_000)).toBe(true);
    } finally {
      await gateway?.stop();
      await pebble.stop();
    }
  });

  it('renews two thirds into a short lifetime, serving the new certificate to new connections while an open one goes on', async () => {
    const port = await freePort();
    const pebble = await startPebble({ tlsPort: port, httpPort: await freePort(), certificateValiditySeconds: 24 });
    let gateway: CliProcess | null = null;
    try {
      gateway = await serveWithAcme(pebble, port, join(dir, 'renew'));
      await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
      const trust = `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`;
      const first = await servedCertificate(port, trust);
      // A client that keeps its connection across the renewal.
      const open = await keptConnection(port, trust);
      await gateway.waitForOutput('ACME certificate issued', { count: 2, timeoutMs: 60_000 });
      const second = await servedCertificate(port, trust);
      expect(second.fingerprint256).not.toBe(first.fingerprint256);
      expect(new Date(second.validFrom).getTime()).toBeGreaterThanOrEqual(new Date(first.validFrom).getTime());
      expect(await open.get('/healthz')).toBe(200);
      open.close();
    } finally {
      await gateway?.stop();
      await pebble.stop();
    }
  });

  it('says why the CA refused (its problem document), stays not ready, and serves a stand-in meanwhile', async () => {
    const port = await freePort();
    const pebble = await startPebble({ tlsPort: port, httpPort: await freePort(), domainBlocklist: ['rgw.test'] });
    let gateway: CliProcess | null = null;
    try {
      gateway = await serveWithAcme(pebble, port, join(dir, 'refused'));
      await gateway.waitForOutput('ACME certificate not issued', { timeoutMs: 60_000 });
      const line = gateway.output().split('\n').find((l) => l.includes('ACME certificate not issued'))!;
      expect(line).toContain('Order included an identifier for which issuance is forbidden by policy');
      expect(line).toContain('no certificate from the CA yet');
      expect(line).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
      const ready = await readyz(port);
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body)).toEqual({ status: 'unavailable', reason: `no certificate from the ACME CA yet for ${DOMAIN}` });
      expect((await servedCertificate(port, null)).issuer).toContain('stand-in');
    } finally {
      await gateway?.stop();
      await pebble.stop();
    }
  });

  it('with --workers 2, has one process talk to the CA while either answers the validation, and both serve the certificate', async () => {
    const port = await freePort();
    const pebble = await startPebble({ tlsPort: port, httpPort: await freePort() });
    let gateway: CliProcess | null = null;
    try {
      gateway = await serveWithAcme(pebble, port, join(dir, 'workers'), ['--workers', '2']);
      await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
      expect(gateway.output().match(/ACME certificate issued/g)).toHaveLength(1);
      const trust = `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`;
      // New connections go to either process; each must serve the CA's certificate.
      await eventually(async () => {
        for (let i = 0; i < 20; i++) await servedCertificate(port, trust);
        return true;
      }, 10_000);
    } finally {
      await gateway?.stop();
      await pebble.stop();
    }
  });
});

/** One TLS connection kept open, for requests before and after a certificate change. */
async function keptConnection(port: number, ca: string): Promise<{ get(path: string): Promise<number>; close(): void }> {
  const { Agent, request } = await import('node:https');
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca, servername: DOMAIN });
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent, servername: DOMAIN }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.end();
    });
  expect(await get('/healthz')).toBe(200);
  return { get, close: () => agent.destroy() };
}
