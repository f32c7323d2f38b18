// A private certificate authority and the server and client certificates it signs, as PEM text.
// No file I/O here (see cert-files.ts), so every rule can be tested without a disk.
//
// Node's crypto can verify X.509 but cannot issue it, so node-forge builds and signs the
// certificates. forge only signs with RSA and its own key generation is slow pure JavaScript:
// the RSA keys come from Node (OpenSSL) and are handed to forge as PEM.

import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { createRequire } from 'node:module';
import type Forge from 'node-forge';
import { GatewayError } from '../errors.js';
import { NAME_CONSTRAINTS_OID, describeConstraints, encodeNameConstraints, namesOutside, readNameConstraints, type LeafNames, type NameConstraints } from './name-constraints.js';

// node-forge is large (about 11 MiB once loaded) and only needed to issue certificates: loaded on
// first use, so `serve`, and each of its worker processes, does not pay for it.
let forgeModule: typeof Forge | null = null;
function forge(): typeof Forge {
  forgeModule ??= createRequire(import.meta.url)('node-forge') as typeof Forge;
  return forgeModule;
}

export interface KeyAndCert {
  readonly cert: string;
  readonly key: string;
}

export interface CaOptions {
  commonName?: string;
  /** The names the CA may sign for (see name-constraints.ts); without them it may sign for any. */
  constraints?: NameConstraints;
  days?: number;
  now?: Date;
}

export interface ServerCertOptions {
  hosts: readonly string[];
  ips: readonly string[];
  days?: number;
  now?: Date;
}

export interface CertificateSummary {
  subject: string;
  issuer: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  isCa: boolean;
}

/** The CA outlives many leaves, so it gets NIST's 128-bit-strength RSA size. */
const CA_KEY_BITS = 3072;
/** Leaves are replaced every couple of years; 2048 is accepted everywhere and keeps handshakes cheap. */
const LEAF_KEY_BITS = 2048;
export const CA_DAYS = 3650;
/**
 * 825 days is the longest validity macOS/iOS (and clients applying the same rules) accept for a
 * TLS leaf issued by a private CA; the shorter 398-day limit only binds publicly trusted CAs.
 */
export const LEAF_DAYS = 825;
/** Upper bound on --days: beyond this a date no longer means anything to anyone. */
const MAX_DAYS = 36_500;
/** notBefore is this far in the past, so a client whose clock runs a little slow still accepts a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;
export const DEFAULT_CA_NAME = 'registry-gateway CA';
/**
 * The common name of a server certificate with no host name. Not its IP address: OpenSSL reads a
 * dotted common name as a DNS name when a certificate has no DNS subjectAltName and checks it
 * against the CA's DNS constraints, which an address-only CA excludes altogether.
 */
const ADDRESS_ONLY_SERVER_NAME = 'registry-gateway server';

export function createCa(options: CaOptions = {}): KeyAndCert {
  const days = checkDays(options.days, CA_DAYS);
  const commonName = options.commonName ?? DEFAULT_CA_NAME;
  const keys = rsaKeyPair(CA_KEY_BITS);
  const cert = signCertificate({
    commonName,
    publicKeyPem: keys.publicKey,
    validity: validityWindow(options.now ?? new Date(), days, null),
    issuer: null,
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
      // RFC 5280 says critical: a client that cannot enforce the limits must refuse the CA.
      ...(options.constraints === undefined
        ? []
        : [{ id: NAME_CONSTRAINTS_OID, critical: true, value: encodeNameConstraints(options.constraints).toString('binary') }]),
    ],
    signingKeyPem: keys.privateKey,
  });
  return { cert, key: keys.privateKey };
}

/** cert = leaf followed by the CA certificate (the chain the server sends). */
export function createServerCertificate(ca: KeyAndCert, options: ServerCertOptions): KeyAndCert {
  const names = normalizeServerNames(options.hosts, options.ips);
  const days = checkDays(options.days, LEAF_DAYS);
  const commonName = names.hosts[0] ?? ADDRESS_ONLY_SERVER_NAME;
  const altNames = [
    ...names.hosts.map((host) => ({ type: 2, value: host })),
    ...names.ips.map((ip) => ({ type: 7, value: ip.bytes.toString('binary') })),
  ];
  return issueLeaf(ca, options.now ?? new Date(), days, { dns: names.hosts, ips: names.ips, commonName }, [
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
}

export function createClientCertificate(ca: KeyAndCert, options: { name: string; days?: number; now?: Date }): KeyAndCert {
  const days = checkDays(options.days, LEAF_DAYS);
  if (options.name.trim() === '') throw new GatewayError('CERT_CLIENT_NAME_INVALID', 'the client certificate name is empty');
  return issueLeaf(ca, options.now ?? new Date(), days, { dns: [], ips: [], commonName: options.name }, [
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
}

/** The first certificate in the PEM text. */
export function describeCertificate(pem: string): CertificateSummary {
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (block === null) throw new GatewayError('CERT_UNREADABLE', 'no PEM certificate (-----BEGIN CERTIFICATE-----) found');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(block[0]);
  } catch (err) {
    throw new GatewayError('CERT_UNREADABLE', `the first certificate cannot be parsed (${(err as Error).message})`, { cause: err });
  }
  return {
    subject: oneLine(x509.subject),
    issuer: oneLine(x509.issuer),
    sans: parseSubjectAltName(x509.subjectAltName),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    fingerprint256: x509.fingerprint256,
    isCa: x509.ca,
  };
}

export interface ServerNames {
  /** Lower-cased, de-duplicated DNS names, in the order given. */
  readonly hosts: string[];
  /** Valid IP addresses as given, de-duplicated by value, with their SAN bytes. */
  readonly ips: { text: string; bytes: Buffer }[];
}

/** The host a URL names, as a certificate holds it: an IPv6 address without its brackets. */
export function urlHostName(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * Checks every host name (RFC 1123, or a wildcard `*.example.com`) and IP address (v4 or v6)
 * before any key is made. Errors name the bad value; the code says whether it was a host
 * (CERT_HOST_INVALID) or an IP (CERT_IP_INVALID) so a command can name its flag.
 */
export function normalizeServerNames(hosts: readonly string[], ips: readonly string[]): ServerNames {
  if (hosts.length === 0 && ips.length === 0) throw new GatewayError('CERT_NAMES_MISSING');
  const uniqueHosts = [...new Set(hosts.map(checkHostName))];
  const byValue = new Map<string, { text: string; bytes: Buffer }>();
  for (const ip of ips) {
    const bytes = ipBytes(ip);
    if (!byValue.has(bytes.toString('hex'))) byValue.set(bytes.toString('hex'), { text: ip, bytes });
  }
  return { hosts: uniqueHosts, ips: [...byValue.values()] };
}

function checkHostName(host: string): string {
  const name = host.toLowerCase();
  const problem = hostNameProblem(name);
  if (problem !== null) throw new GatewayError('CERT_HOST_INVALID', `"${host}" cannot be a host name in a certificate: ${problem}`);
  return name;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function hostNameProblem(name: string): string | null {
  if (name === '') return 'it is empty';
  if (isIP(name) !== 0) return 'it is an IP address; give it as an IP address instead';
  if (name.length > 253) return 'it is longer than 253 characters';
  if (/[^\x21-\x7e]/.test(name)) return 'only ASCII letters, digits, hyphens and dots are allowed (write an internationalised name in its xn-- form)';
  const labels = name.split('.');
  if (labels[0] === '*') {
    // Clients match a wildcard against exactly one label, and refuse one directly under a TLD.
    if (labels.length < 3) return 'a wildcard needs at least two labels after it, like *.example.com';
    labels.shift();
  } else if (name.includes('*')) {
    return 'a wildcard may only be the whole leftmost label, like *.example.com';
  }
  const bad = labels.find((label) => !LABEL.test(label));
  if (bad === '') return 'it has an empty label (a leading or trailing dot, or two dots in a row)';
  if (bad !== undefined) return `the label "${bad}" must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen`;
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return 'its last label is all digits, so it is neither a DNS name nor an IP address';
  return null;
}

function ipBytes(ip: string): Buffer {
  // net.isIP accepts a zone index (fe80::1%eth0); a certificate holds only the 16 address bytes.
  if (ip.includes('%')) throw new GatewayError('CERT_IP_INVALID', `"${ip}" has a zone index (%...), which cannot go in a certificate`);
  const version = isIP(ip);
  if (version === 0) throw new GatewayError('CERT_IP_INVALID', `"${ip}" is not an IPv4 or IPv6 address`);
  return version === 4 ? ipv4Bytes(ip) : ipv6Bytes(ip);
}

function ipv4Bytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

/** Only for text net.isIP() accepted as IPv6 (at most one `::`, an optional dotted IPv4 tail). */
function ipv6Bytes(ip: string): Buffer {
  const tail = /\d+\.\d+\.\d+\.\d+$/.exec(ip);
  const text = tail === null ? ip : ip.slice(0, tail.index) + ipv4Bytes(tail[0]).toString('hex').replace(/^(.{4})/, '$1:');
  const [head = '', rest] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const all =
    rest === undefined
      ? groups(head)
      : [...groups(head), ...Array<string>(8 - groups(head).length - groups(rest).length).fill('0'), ...groups(rest)];
  return Buffer.from(all.map((group) => group.padStart(4, '0')).join(''), 'hex');
}

function checkDays(days: number | undefined, fallback: number): number {
  const value = days ?? fallback;
  if (!Number.isInteger(value) || value < 1 || value > MAX_DAYS) {
    throw new GatewayError('CERT_DAYS_INVALID', `a validity of ${value} days is not a whole number from 1 to ${MAX_DAYS}`);
  }
  return value;
}

interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/**
 * Whole seconds (what a certificate stores); never past `limit` (a leaf is useless once its CA has
 * expired). The period from notBefore to notAfter is exactly `days`: clients that cap a leaf at 825
 * days (macOS, iOS) measure that period, so the back-dating comes off the end.
 */
function validityWindow(now: Date, days: number, limit: Date | null): Validity {
  const seconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  const notBefore = seconds(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(notBefore.getTime() + days * DAY_MS);
  return { notBefore, notAfter: limit !== null && limit < notAfter ? limit : notAfter };
}

function rsaKeyPair(bits: number): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
}

/** 16 random bytes; top bit clear (a DER INTEGER is signed) and next bit set (no leading zero byte to trim). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

interface Issuer {
  readonly cert: Forge.pki.Certificate;
  readonly keyPem: string;
  readonly pem: string;
  readonly notAfter: Date;
}

interface CertificateDraft {
  commonName: string;
  publicKeyPem: string;
  validity: Validity;
  /** null: self-signed. */
  issuer: Forge.pki.Certificate | null;
  extensions: object[];
  signingKeyPem: string;
}

function issueLeaf(ca: KeyAndCert, now: Date, days: number, names: LeafNames, usage: object[]): KeyAndCert {
  const issuer = openCa(ca, now);
  refuseNamesOutside(issuer.pem, names);
  const keys = rsaKeyPair(LEAF_KEY_BITS);
  const leaf = signCertificate({
    commonName: names.commonName,
    publicKeyPem: keys.publicKey,
    validity: validityWindow(now, days, issuer.notAfter),
    issuer: issuer.cert,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      ...usage,
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caKeyIdentifier(issuer.cert) },
    ],
    signingKeyPem: issuer.keyPem,
  });
  return { cert: leaf + issuer.pem, key: keys.privateKey };
}

function signCertificate(draft: CertificateDraft): string {
  const cert = forge().pki.createCertificate();
  cert.serialNumber = serialNumber();
  // The public key goes in first: setExtensions derives the subjectKeyIdentifier from it.
  cert.publicKey = forge().pki.publicKeyFromPem(draft.publicKeyPem);
  cert.validity.notBefore = draft.validity.notBefore;
  cert.validity.notAfter = draft.validity.notAfter;
  // UTF8String, not forge's default PrintableString, which cannot hold every character of a name.
  const subject = [{ name: 'commonName', value: draft.commonName, valueTagClass: forge().asn1.Type.UTF8 as unknown as Forge.asn1.Class }];
  cert.setSubject(subject);
  // The issuer's own encoded attributes, so its name matches the CA's subject byte for byte.
  cert.setIssuer(draft.issuer === null ? subject : draft.issuer.subject.attributes);
  cert.setExtensions(draft.extensions);
  cert.sign(forge().pki.privateKeyFromPem(draft.signingKeyPem), forge().md.sha256.create());
  return forge().pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

/**
 * A certificate with a name outside its CA's name constraints would be refused by every client
 * (Docker, containerd, curl, Node): say so now, and what to do, rather than write it.
 */
function refuseNamesOutside(caPem: string, names: LeafNames): void {
  let constraints: NameConstraints | null;
  try {
    constraints = readNameConstraints(caPem);
  } catch {
    throw new GatewayError('CA_UNUSABLE', 'the CA cannot sign: its name constraints extension cannot be read');
  }
  if (constraints === null) return;
  const outside = namesOutside(constraints, names);
  if (outside.length === 0) return;
  const clientOnly = names.dns.length === 0 && names.ips.length === 0;
  throw new GatewayError(
    'CA_UNUSABLE',
    clientOnly
      ? `the CA cannot sign for "${names.commonName}": with its dots it reads as a host name to OpenSSL, which checks it against the CA's name constraints (${describeConstraints(constraints)}) and would refuse it; choose a name without dots, like ${names.commonName.replace(/\./g, '-')}`
      : `the CA cannot sign for ${outside.join(', ')}: it is limited by name constraints to ${describeConstraints(constraints)}, and clients would refuse the certificate. Make a new CA that covers every name (registry-gateway certs init --force with each --host/--ip, and --ca-domain SUFFIX for a whole domain), then trust the new ca.crt on every client`,
  );
}

/** The CA's own subjectKeyIdentifier when it has one, so chain building by key id finds it. */
function caKeyIdentifier(caCert: Forge.pki.Certificate): string {
  const ski = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  return ski?.subjectKeyIdentifier === undefined
    ? caCert.generateSubjectKeyIdentifier().getBytes()
    : forge().util.hexToBytes(ski.subjectKeyIdentifier);
}

/** Checks that the CA can sign now, with a message saying what to fix when it cannot. */
function openCa(ca: KeyAndCert, now: Date): Issuer {
  const unusable = (why: string) => new GatewayError('CA_UNUSABLE', `the CA cannot sign: ${why}`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(ca.cert);
  } catch {
    throw unusable('its certificate is not a PEM certificate');
  }
  if (!x509.ca) throw unusable('its certificate is not a CA certificate (basicConstraints CA:TRUE)');
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(ca.key);
  } catch {
    throw unusable('its key is not an unencrypted PEM private key');
  }
  if (key.asymmetricKeyType !== 'rsa') throw unusable(`its key is ${key.asymmetricKeyType ?? 'not RSA'}; only an RSA CA key can sign here (make one with registry-gateway certs init)`);
  if (!x509.checkPrivateKey(key)) throw unusable('its key does not belong to its certificate');
  const notAfter = new Date(x509.validTo);
  if (notAfter <= now) throw unusable(`its certificate expired on ${notAfter.toISOString()}; make a new CA`);
  const pem = x509.toString();
  return { cert: forge().pki.certificateFromPem(pem), keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, pem, notAfter };
}

function oneLine(name: string): string {
  return name.split('\n').filter((part) => part !== '').join(', ');
}

/** Node's "DNS:a, IP Address:1.2.3.4" (values with separators come JSON-quoted) as ["DNS:a", "IP:1.2.3.4"]. */
function parseSubjectAltName(text: string | undefined): string[] {
  if (text === undefined) return [];
  const entries = text.matchAll(/([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g);
  return [...entries].map(([, kind = '', raw = '']) => {
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    return kind === 'IP Address' ? `IP:${canonicalIp(value)}` : `${kind}:${value}`;
  });
}

/** Node prints IPv6 SANs uncompressed in upper case; the URL parser gives the usual RFC 5952 form. */
function canonicalIp(text: string): string {
  return isIP(text) === 6 ? new URL(`http://[${text}]/`).hostname.slice(1, -1) : text;
}
