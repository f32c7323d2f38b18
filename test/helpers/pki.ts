// A throw-away certificate authority and server certificates, made with the openssl CLI.
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runOk } from './tools.js';

export interface TestPki {
  readonly dir: string;
  /** CA certificate (PEM file) the clients must trust. */
  readonly caCert: string;
  readonly caKey: string;
  /** Server certificate chain: leaf first, then the CA. */
  readonly serverCert: string;
  /** Leaf certificate alone. */
  readonly serverLeafCert: string;
  /** Server private key, mode 0600. */
  readonly serverKey: string;
  /** A folder holding only `ca.crt`, for `skopeo --cert-dir` and `/etc/docker/certs.d/HOST:PORT`. */
  readonly trustDir: string;
  /** PEM text of the CA certificate (for Node's `ca` option). */
  readonly caPem: string;
}

export interface CertRequest {
  /** DNS names for subjectAltName. */
  hosts: string[];
  /** IP addresses for subjectAltName. */
  ips: string[];
}

export interface IssueOptions extends CertRequest {
  /** Validity start, `YYYYMMDDHHMMSSZ` (UTC). Now minus one hour by default. */
  notBefore?: string;
  /** Validity end, `YYYYMMDDHHMMSSZ` (UTC). Two days from now by default. */
  notAfter?: string;
  /** Extended key usage; `serverAuth` by default. */
  extendedKeyUsage?: string;
  commonName?: string;
}

export interface IssuedCert {
  /** Leaf then CA chain. */
  readonly cert: string;
  readonly leafCert: string;
  readonly key: string;
}

/**
 * Makes `dir` (created when missing) hold a CA (ca.crt, ca.key) and a server certificate signed by
 * it (server.crt = leaf + CA, server.key) for the given names, plus trust/ca.crt. Keys are mode 0600.
 */
export async function makeTestPki(dir: string, request: CertRequest): Promise<TestPki> {
  const openssl = requireTool('openssl');
  await mkdir(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  await runOk(openssl, [
    'req', '-x509', '-new', '-nodes',
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', caKey, '-out', caCert,
    '-days', '3', '-subj', '/O=registry-gateway tests/CN=registry-gateway test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  await chmod(caKey, 0o600);
  const trustDir = join(dir, 'trust');
  await mkdir(trustDir, { recursive: true });
  const caPem = await readFile(caCert, 'utf8');
  await writeFile(join(trustDir, 'ca.crt'), caPem);

  const pki: TestPki = {
    dir,
    caCert,
    caKey,
    serverCert: join(dir, 'server.crt'),
    serverLeafCert: join(dir, 'server-leaf.crt'),
    serverKey: join(dir, 'server.key'),
    trustDir,
    caPem,
  };
  await issueCert(pki, 'server', request);
  return pki;
}

/**
 * Issues `NAME.crt` (leaf + CA), `NAME-leaf.crt` and `NAME.key` in the PKI folder, signed by its CA,
 * with any validity window (uses `openssl ca`, which can back-date certificates).
 */
export async function issueCert(pki: TestPki, name: string, options: IssueOptions): Promise<IssuedCert> {
  const openssl = requireTool('openssl');
  const key = join(pki.dir, `${name}.key`);
  const csr = join(pki.dir, `${name}.csr`);
  const leafCert = join(pki.dir, `${name}-leaf.crt`);
  const cert = join(pki.dir, `${name}.crt`);
  const caDir = join(pki.dir, `${name}-ca-db`);
  await rm(caDir, { recursive: true, force: true });
  await mkdir(caDir);
  await writeFile(join(caDir, 'index.txt'), '');
  await writeFile(join(caDir, 'serial'), `${randomSerial()}\n`);

  const sans = [...options.hosts.map((h) => `DNS:${h}`), ...options.ips.map((ip) => `IP:${ip}`)];
  const cfg = join(caDir, 'ca.cnf');
  await writeFile(
    cfg,
    [
      '[ ca ]',
      'default_ca = test_ca',
      '[ test_ca ]',
      `dir = ${caDir}`,
      'database = $dir/index.txt',
      'serial = $dir/serial',
      'new_certs_dir = $dir',
      `certificate = ${pki.caCert}`,
      `private_key = ${pki.caKey}`,
      'default_md = sha256',
      'policy = policy_any',
      'unique_subject = no',
      'copy_extensions = none',
      'email_in_dn = no',
      '[ policy_any ]',
      'commonName = supplied',
      '[ leaf_ext ]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage = ${options.extendedKeyUsage ?? 'serverAuth'}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []),
      '',
    ].join('\n'),
  );
  const commonName = options.commonName ?? options.hosts[0] ?? options.ips[0] ?? name;
  await runOk(openssl, [
    'req', '-new', '-nodes',
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', key, '-out', csr, '-subj', `/CN=${commonName}`,
  ]);
  await chmod(key, 0o600);
  const now = Date.now();
  await runOk(openssl, [
    'ca', '-batch', '-notext', '-config', cfg, '-extensions', 'leaf_ext',
    '-startdate', options.notBefore ?? asn1Time(new Date(now - 3_600_000)),
    '-enddate', options.notAfter ?? asn1Time(new Date(now + 2 * 86_400_000)),
    '-in', csr, '-out', leafCert,
  ]);
  const leafPem = await readFile(leafCert, 'utf8');
  await writeFile(cert, leafPem + pki.caPem);
  await rm(csr, { force: true });
  await rm(caDir, { recursive: true, force: true });
  return { cert, leafCert, key };
}

/** A certificate for the names that expired a year ago (valid for one day two years ago). */
export async function makeExpiredCert(pki: TestPki, request: CertRequest, name = 'expired'): Promise<IssuedCert> {
  const year = 365 * 86_400_000;
  const start = Date.now() - 2 * year;
  return issueCert(pki, name, {
    ...request,
    notBefore: asn1Time(new Date(start)),
    notAfter: asn1Time(new Date(start + 86_400_000)),
  });
}

/** A certificate that only becomes valid in a year. */
export async function makeNotYetValidCert(pki: TestPki, request: CertRequest, name = 'not-yet-valid'): Promise<IssuedCert> {
  const year = 365 * 86_400_000;
  return issueCert(pki, name, {
    ...request,
    notBefore: asn1Time(new Date(Date.now() + year)),
    notAfter: asn1Time(new Date(Date.now() + 2 * year)),
  });
}

/** A valid certificate (`NAME.crt`) paired with an unrelated private key (`NAME-other.key`). */
export async function makeMismatchedPair(
  pki: TestPki,
  request: CertRequest,
  name = 'mismatched',
): Promise<{ cert: string; key: string }> {
  const openssl = requireTool('openssl');
  const issued = await issueCert(pki, name, request);
  const otherKey = join(pki.dir, `${name}-other.key`);
  await runOk(openssl, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKey]);
  await chmod(otherKey, 0o600);
  return { cert: issued.cert, key: otherKey };
}

/** `YYYYMMDDHHMMSSZ`, the time format of `openssl ca -startdate/-enddate`. */
export function asn1Time(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

function randomSerial(): string {
  // 16 hex digits with a leading non-zero nibble: a positive serial, unique per issue.
  const digits = Array.from({ length: 15 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
  return `1${digits}`;
}
