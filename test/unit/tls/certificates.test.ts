// Certificate generation, checked with Node's own X.509 parser (OpenSSL underneath), not with forge.
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { isGatewayError, type ErrorCode } from '../../../src/errors.js';
import {
  createCa,
  createClientCertificate,
  createServerCertificate,
  describeCertificate,
  normalizeServerNames,
  type KeyAndCert,
} from '../../../src/tls/certificates.js';
import { constraintsFor, readNameConstraints } from '../../../src/tls/name-constraints.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY_MS = 86_400_000;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

function certs(pem: string): X509Certificate[] {
  return (pem.match(PEM_CERT) ?? []).map((block) => new X509Certificate(block));
}

function leaf(pem: string): X509Certificate {
  return certs(pem)[0]!;
}

function keyBits(pem: string): number | undefined {
  return createPrivateKey(pem).asymmetricKeyDetails?.modulusLength;
}

function thrownBy(fn: () => unknown): { code: ErrorCode; message: string } {
  try {
    fn();
  } catch (err) {
    if (isGatewayError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a GatewayError, nothing was thrown');
}

let ca: KeyAndCert;
let caX509: X509Certificate;

beforeAll(() => {
  ca = createCa();
  caX509 = new X509Certificate(ca.cert);
});

describe('createCa', () => {
  test('is a self-signed CA with an RSA 3072 key that matches it', () => {
    expect(caX509.ca).toBe(true);
    expect(caX509.subject).toBe('CN=registry-gateway CA');
    expect(caX509.issuer).toBe(caX509.subject);
    expect(caX509.verify(caX509.publicKey)).toBe(true);
    expect(caX509.checkPrivateKey(createPrivateKey(ca.key))).toBe(true);
    expect(keyBits(ca.key)).toBe(3072);
    expect(ca.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  test('lasts 10 years by default and starts a few minutes early for clock skew', () => {
    const now = new Date('2031-05-06T07:08:09.500Z');
    const x509 = new X509Certificate(createCa({ now, commonName: 'Team CA' }).cert);
    expect(x509.subject).toBe('CN=Team CA');
    expect(new Date(x509.validFrom).toISOString()).toBe('2031-05-06T07:03:09.000Z');
    expect(new Date(x509.validTo).getTime()).toBe(Date.parse('2031-05-06T07:03:09.000Z') + 3650 * DAY_MS);
  });
});

describe('createServerCertificate', () => {
  let server: KeyAndCert;
  let x509: X509Certificate;

  beforeAll(() => {
    server = createServerCertificate(ca, {
      hosts: ['Registry.Example.com', '*.apps.example.com', 'localhost'],
      ips: ['10.0.0.5', '::1', 'fd00::1:2', '::ffff:192.0.2.1'],
    });
    x509 = leaf(server.cert);
  });

  test('is signed by the CA, matches its own RSA 2048 key and is not a CA', () => {
    expect(x509.verify(caX509.publicKey)).toBe(true);
    expect(x509.checkIssued(caX509)).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(server.key))).toBe(true);
    expect(keyBits(server.key)).toBe(2048);
    expect(x509.ca).toBe(false);
    expect(x509.keyUsage).toEqual([SERVER_AUTH]);
  });

  test('is sent as a chain: the leaf, then the CA certificate', () => {
    const chain = certs(server.cert);
    expect(chain).toHaveLength(2);
    expect(chain[1]!.fingerprint256).toBe(caX509.fingerprint256);
  });

  test('names every host (lower-cased) and every IPv4 and IPv6 address, CN = first host', () => {
    expect(x509.subject).toBe('CN=registry.example.com');
    expect(x509.checkHost('registry.example.com')).toBe('registry.example.com');
    expect(x509.checkHost('localhost')).toBe('localhost');
    expect(x509.checkHost('ci.apps.example.com')).toBe('*.apps.example.com'); // matched through the wildcard
    expect(x509.checkHost('a.b.apps.example.com')).toBeUndefined();
    expect(x509.checkHost('example.org')).toBeUndefined();
    expect(x509.checkIP('10.0.0.5')).toBe('10.0.0.5');
    expect(x509.checkIP('::1')).toBe('::1');
    expect(x509.checkIP('fd00:0:0:0:0:0:1:2')).toBe('fd00:0:0:0:0:0:1:2');
    expect(x509.checkIP('10.0.0.6')).toBeUndefined();
    expect(describeCertificate(server.cert).sans).toEqual([
      'DNS:registry.example.com',
      'DNS:*.apps.example.com',
      'DNS:localhost',
      'IP:10.0.0.5',
      'IP:::1',
      'IP:fd00::1:2',
      'IP:::ffff:c000:201',
    ]);
  });

  test('has a CN that is no DNS name when there is no host, and lists a repeated name once', () => {
    // OpenSSL would check a dotted CN such as 192.0.2.7 against the CA's DNS name constraints.
    const x = leaf(createServerCertificate(ca, { hosts: [], ips: ['192.0.2.7', '::1', '0:0::1', '192.0.2.7'] }).cert);
    expect(x.subject).toBe('CN=registry-gateway server');
    expect(describeCertificate(x.toString()).sans).toEqual(['IP:192.0.2.7', 'IP:::1']);
  });

  test('lasts exactly 825 days by default, or --days, from a few minutes before now', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const byDefault = leaf(createServerCertificate(ca, { hosts: ['a.example'], ips: [], now }).cert);
    const notBefore = new Date(byDefault.validFrom).getTime();
    expect(new Date(notBefore).toISOString()).toBe('2029-12-31T23:55:00.000Z');
    // macOS and iOS refuse a private-CA leaf whose notBefore..notAfter period exceeds 825 days.
    expect(new Date(byDefault.validTo).getTime() - notBefore).toBe(825 * DAY_MS);
    const short = leaf(createServerCertificate(ca, { hosts: ['a.example'], ips: [], days: 10, now }).cert);
    expect(new Date(short.validTo).getTime() - new Date(short.validFrom).getTime()).toBe(10 * DAY_MS);
  });

  test('never outlives its CA', () => {
    const shortCa = createCa({ days: 30 });
    const x = leaf(createServerCertificate(shortCa, { hosts: ['a.example'], ips: [], days: 400 }).cert);
    expect(x.validTo).toBe(new X509Certificate(shortCa.cert).validTo);
  });

  test('gets a fresh 16-byte positive serial number every time', () => {
    const serials = Array.from({ length: 4 }, () => leaf(createServerCertificate(ca, { hosts: ['a.example'], ips: [] }).cert).serialNumber);
    serials.push(caX509.serialNumber, x509.serialNumber);
    expect(new Set(serials).size).toBe(serials.length);
    for (const serial of serials) expect(serial).toMatch(/^[0-7][0-9A-F]{31}$/);
  });
});

describe('names that cannot go in a certificate', () => {
  test.each([
    ['bad_name.example', 'bad_name'],
    ['-lead.example', '-lead'],
    ['a..example', 'empty label'],
    ['example.com.', 'empty label'],
    ['foo.*.example.com', 'wildcard'],
    ['*.com', 'wildcard'],
    ['300.1.1.1', 'all digits'],
    ['10.0.0.1', 'IP address'],
    ['bücher.example', 'xn--'],
    ['', 'empty'],
    [`${'a'.repeat(64)}.example`, 'a'.repeat(64)],
  ])('host %j is refused, naming it (%s)', (host, why) => {
    const error = thrownBy(() => createServerCertificate(ca, { hosts: ['ok.example', host], ips: [] }));
    expect(error.code).toBe('CERT_HOST_INVALID');
    expect(error.message).toContain(`"${host}"`);
    expect(error.message).toContain(why);
  });

  test.each(['300.1.1.1', '10.0.0', 'fe80::1%eth0', 'example.com', '::1::2'])('IP %j is refused, naming it', (ip) => {
    const error = thrownBy(() => createServerCertificate(ca, { hosts: [], ips: [ip] }));
    expect(error.code).toBe('CERT_IP_INVALID');
    expect(error.message).toContain(`"${ip}"`);
  });

  test('a server certificate needs at least one name', () => {
    expect(thrownBy(() => createServerCertificate(ca, { hosts: [], ips: [] })).code).toBe('CERT_NAMES_MISSING');
  });

  test.each([0, -1, 1.5, 40_000])('a validity of %d days is refused', (days) => {
    const error = thrownBy(() => createServerCertificate(ca, { hosts: ['a.example'], ips: [], days }));
    expect(error.code).toBe('CERT_DAYS_INVALID');
    expect(error.message).toContain(String(days));
  });
});

describe('createClientCertificate', () => {
  test('is for client authentication only, named after the client and signed by the CA', () => {
    const client = createClientCertificate(ca, { name: 'alice' });
    const x509 = leaf(client.cert);
    expect(x509.subject).toBe('CN=alice');
    expect(x509.keyUsage).toEqual([CLIENT_AUTH]);
    expect(x509.ca).toBe(false);
    expect(x509.verify(caX509.publicKey)).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(client.key))).toBe(true);
    expect(x509.subjectAltName).toBeUndefined();
  });
});

describe('a CA that cannot sign', () => {
  test('a key that is not the CA certificate’s is refused', () => {
    const other = createCa();
    const error = thrownBy(() => createClientCertificate({ cert: ca.cert, key: other.key }, { name: 'alice' }));
    expect(error).toEqual({ code: 'CA_UNUSABLE', message: expect.stringContaining('does not belong') });
  });

  test('an EC CA key is refused with a word on RSA', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const error = thrownBy(() => createServerCertificate({ cert: ca.cert, key: ec }, { hosts: ['a.example'], ips: [] }));
    expect(error).toEqual({ code: 'CA_UNUSABLE', message: expect.stringContaining('RSA') });
  });

  test('a leaf certificate cannot act as the CA', () => {
    const server = createServerCertificate(ca, { hosts: ['a.example'], ips: [] });
    const error = thrownBy(() => createClientCertificate(server, { name: 'alice' }));
    expect(error).toEqual({ code: 'CA_UNUSABLE', message: expect.stringContaining('not a CA') });
  });

  test('an expired CA is refused', () => {
    const old = createCa({ now: new Date(Date.now() - 3 * DAY_MS), days: 1 });
    const error = thrownBy(() => createServerCertificate(old, { hosts: ['a.example'], ips: [] }));
    expect(error).toEqual({ code: 'CA_UNUSABLE', message: expect.stringContaining('expired') });
  });
});

describe('describeCertificate', () => {
  test('summarises the first certificate of a chain', () => {
    const server = createServerCertificate(ca, { hosts: ['registry.example.com'], ips: ['10.0.0.5'] });
    const x509 = leaf(server.cert);
    expect(describeCertificate(server.cert)).toEqual({
      subject: 'CN=registry.example.com',
      issuer: 'CN=registry-gateway CA',
      sans: ['DNS:registry.example.com', 'IP:10.0.0.5'],
      notBefore: new Date(x509.validFrom),
      notAfter: new Date(x509.validTo),
      fingerprint256: x509.fingerprint256,
      isCa: false,
    });
    expect(describeCertificate(ca.cert).isCa).toBe(true);
  });

  test('text without a certificate is an error saying so', () => {
    expect(thrownBy(() => describeCertificate(ca.key))).toEqual({ code: 'CERT_UNREADABLE', message: expect.stringContaining('no PEM certificate') });
    const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    expect(thrownBy(() => describeCertificate(broken)).code).toBe('CERT_UNREADABLE');
  });
});

describe('a CA limited by name constraints', () => {
  let limited: KeyAndCert;

  beforeAll(() => {
    const names = normalizeServerNames(['registry.example.com', '*.apps.example.net'], ['10.0.0.5']);
    limited = createCa({ constraints: constraintsFor(names, ['corp.example']) });
  });

  test('carries them in the certificate, read back from its DER', () => {
    expect(readNameConstraints(limited.cert)).toEqual({
      permittedDns: ['registry.example.com', 'apps.example.net', 'corp.example'],
      excludedDns: [],
      permittedIps: [{ address: Buffer.from([10, 0, 0, 5]), mask: Buffer.from([255, 255, 255, 255]) }],
      excludedIps: [],
    });
  });

  test('signs for its names, the names under them and the --ca-domain suffix', () => {
    const ok = createServerCertificate(limited, { hosts: ['registry.example.com', 'a.registry.example.com', '*.apps.example.net', 'x.corp.example'], ips: ['10.0.0.5'] });
    expect(leaf(ok.cert).verify(new X509Certificate(limited.cert).publicKey)).toBe(true);
  });

  test.each([
    [['www.example.com'], [], 'www.example.com'],
    [['xregistry.example.com'], [], 'xregistry.example.com'],
    [['*.example.com'], [], '*.example.com'],
    [['registry.example.com'], ['10.0.0.6'], '10.0.0.6'],
    [['registry.example.com'], ['fd00::5'], 'fd00::5'],
  ])('refuses %j %j before signing, naming %s and the way out', (hosts, ips, outside) => {
    const error = thrownBy(() => createServerCertificate(limited, { hosts, ips }));
    expect(error.code).toBe('CA_UNUSABLE');
    expect(error.message).toContain(`cannot sign for ${outside}`);
    expect(error.message).toContain('certs init --force');
    expect(error.message).toContain('--ca-domain');
  });

  test('issues client certificates, but not for a dotted name OpenSSL would take for a host', () => {
    expect(leaf(createClientCertificate(limited, { name: 'ci-runner' }).cert).subject).toBe('CN=ci-runner');
    const error = thrownBy(() => createClientCertificate(limited, { name: 'ci.runner' }));
    expect(error).toEqual({ code: 'CA_UNUSABLE', message: expect.stringContaining('like ci-runner') });
  });

  test('a CA made without them (before they existed) still signs for any name', () => {
    expect(readNameConstraints(ca.cert)).toBeNull();
    expect(leaf(createServerCertificate(ca, { hosts: ['www.example.com'], ips: ['8.8.8.8'] }).cert).subject).toBe('CN=www.example.com');
  });
});
