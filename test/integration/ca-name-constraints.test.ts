// The attack on a leaked CA key, replayed: someone copies ca.key from the gateway's certs folder and
// signs a certificate for another site. The CA's name constraints must make every client that
// trusts ca.crt refuse it: openssl verify, and Node's TLS client (OpenSSL too, with a real
// handshake). Certificates for the names the CA was made for must still verify with both.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeCertificateSet } from '../../src/tls/cert-files.js';
import { issueCert, type CertRequest, type TestPki } from '../helpers/pki.js';
import { requireTool, run } from '../helpers/tools.js';

const openssl = requireTool('openssl');
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'rgw-ca-limits-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A CA as the gateway makes it, wrapped so the test helpers can sign with its key like an attacker would. */
async function gatewayCa(name: string, hosts: string[], ips: string[], caDomains: string[] = []): Promise<TestPki> {
  const dir = join(root, name);
  const files = await writeCertificateSet(dir, { hosts, ips, caDomains });
  const caPem = await readFile(files.caCert, 'utf8');
  return { dir, caCert: files.caCert, caKey: files.caKey, serverCert: files.serverCert, serverLeafCert: '', serverKey: files.serverKey, trustDir: '', caPem };
}

let serial = 0;
async function signWithStolenKey(pki: TestPki, request: CertRequest & { commonName?: string }) {
  serial += 1;
  return issueCert(pki, `forged-${serial}`, request);
}

async function opensslVerify(pki: TestPki, leafFile: string): Promise<{ ok: boolean; output: string }> {
  const result = await run(openssl, ['verify', '-CAfile', pki.caCert, leafFile]);
  return { ok: result.code === 0, output: result.stdout + result.stderr };
}

/** A TLS handshake against a server presenting the certificate, by a client trusting only the CA. */
async function nodeHandshake(pki: TestPki, cert: { cert: string; key: string }, servername: string): Promise<{ ok: boolean; error?: string }> {
  const server = tls.createServer({ cert: await readFile(cert.cert), key: await readFile(cert.key) }, (socket) => socket.end());
  server.on('tlsClientError', () => {}); // the client refusing is the point
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.caPem });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve({ ok: true });
      });
      socket.once('error', (err) => resolve({ ok: false, error: err.message }));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('a CA made for registry.example.com, localhost, 127.0.0.1 and ::1', () => {
  let pki: TestPki;

  beforeAll(async () => {
    pki = await gatewayCa('main', ['registry.example.com', 'localhost'], ['127.0.0.1', '::1']);
  });

  test('openssl shows a critical nameConstraints extension permitting exactly those names', async () => {
    const text = (await run(openssl, ['x509', '-in', pki.caCert, '-noout', '-ext', 'nameConstraints'])).stdout;
    expect(text).toContain('X509v3 Name Constraints: critical');
    expect(text).toMatch(/Permitted:\s+DNS:registry\.example\.com\s+DNS:localhost\s+IP:127\.0\.0\.1\/255\.255\.255\.255\s+IP:0:0:0:0:0:0:0:1\/FFFF(:FFFF){7}\n/);
    expect(text).not.toContain('Excluded');
  });

  test.each([
    ['www.example.com', { hosts: ['www.example.com'], ips: [] }],
    ['a wildcard over the parent domain', { hosts: ['*.example.com'], ips: [] }],
    ['a name that merely ends like it', { hosts: ['xregistry.example.com'], ips: [] }],
    ['a name with it as a prefix', { hosts: ['registry.example.com.evil.test'], ips: [] }],
    ['a permitted name next to a foreign one', { hosts: ['registry.example.com', 'www.example.com'], ips: [] }],
    ['another IPv4 address', { hosts: [], ips: ['8.8.8.8'] }],
    ['another IPv6 address', { hosts: [], ips: ['2001:4860:4860::8888'] }],
    ['no subjectAltName, the site in the common name', { hosts: [], ips: [], commonName: 'www.example.com' }],
  ])('a certificate it signs for %s is refused by openssl verify', async (_what, request) => {
    const forged = await signWithStolenKey(pki, request);
    const verdict = await opensslVerify(pki, forged.leafCert);
    expect(verdict.ok, verdict.output).toBe(false);
    expect(verdict.output).toMatch(/(permitted|excluded) subtree violation/);
  });

  test.each(['www.example.com', 'registry.example.com.evil.test'])('Node refuses the TLS handshake of a forged certificate for %s', async (site) => {
    const forged = await signWithStolenKey(pki, { hosts: [site], ips: [] });
    const result = await nodeHandshake(pki, forged, site);
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/permitted subtree violation/);
  });

  test.each([
    ['registry.example.com', { hosts: ['registry.example.com'], ips: [] }],
    ['a name under it', { hosts: ['v2.registry.example.com'], ips: [] }],
    ['its addresses', { hosts: ['localhost'], ips: ['127.0.0.1', '::1'] }],
  ])('a certificate for %s still verifies with openssl and Node', async (_what, request) => {
    const issued = await signWithStolenKey(pki, request);
    const verdict = await opensslVerify(pki, issued.leafCert);
    expect(verdict.ok, verdict.output).toBe(true);
    expect(await nodeHandshake(pki, issued, request.hosts[0]!)).toEqual({ ok: true });
  });

  test('the server certificate the gateway made verifies, by name and by address', async () => {
    const server = { cert: pki.serverCert, key: pki.serverKey };
    expect(await nodeHandshake(pki, server, 'registry.example.com')).toEqual({ ok: true });
    const byIp = await run(openssl, ['verify', '-CAfile', pki.caCert, '-verify_ip', '::1', pki.serverCert]);
    expect(byIp.code, byIp.stdout + byIp.stderr).toBe(0);
  });
});

describe('the name types a CA was not made for are closed', () => {
  test('a CA made for host names only refuses every IP address', async () => {
    const pki = await gatewayCa('hosts-only', ['registry.example.com'], []);
    for (const ip of ['8.8.8.8', '::1']) {
      const verdict = await opensslVerify(pki, (await signWithStolenKey(pki, { hosts: [], ips: [ip], commonName: 'x' })).leafCert);
      expect(verdict.output).toContain('excluded subtree violation');
    }
  });

  test('a CA made for addresses only refuses every DNS name, and its own certificate still verifies', async () => {
    const pki = await gatewayCa('ips-only', [], ['10.0.0.5']);
    const verdict = await opensslVerify(pki, (await signWithStolenKey(pki, { hosts: ['www.example.com'], ips: [] })).leafCert);
    expect(verdict.output).toContain('excluded subtree violation');
    const own = await run(openssl, ['verify', '-CAfile', pki.caCert, '-verify_ip', '10.0.0.5', pki.serverCert]);
    expect(own.code, own.stdout + own.stderr).toBe(0);
  });
});

describe('--ca-domain', () => {
  test('permits the suffix and every name under it, and nothing beyond', async () => {
    const pki = await gatewayCa('domain', ['registry.example.com'], ['10.0.0.5'], ['corp.example']);
    const inside = await signWithStolenKey(pki, { hosts: ['mirror.eu.corp.example'], ips: [] });
    expect((await opensslVerify(pki, inside.leafCert)).ok).toBe(true);
    expect(await nodeHandshake(pki, inside, 'mirror.eu.corp.example')).toEqual({ ok: true });
    const outside = await signWithStolenKey(pki, { hosts: ['corp.example.org'], ips: [] });
    expect((await opensslVerify(pki, outside.leafCert)).output).toContain('permitted subtree violation');
    expect((await nodeHandshake(pki, outside, 'corp.example.org')).ok).toBe(false);
  });
});
