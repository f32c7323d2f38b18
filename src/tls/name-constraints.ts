// Name constraints (RFC 5280, 4.2.1.10) for the CA the gateway makes, so that its key, which sits
// in the same folder as the server's, can only sign for the registry's own names: a copy of
// ca.key cannot be used to impersonate any other site to the machines that trust ca.crt.
//
// The extension is built and read here with a few lines of DER rather than node-forge: forge
// (1.4) reads nameConstraints but cannot write them, and start-up checks the served chain
// without loading forge at all.

import { X509Certificate } from 'node:crypto';
import type { ServerNames } from './certificates.js';

/** An address and its mask, both 4 (IPv4) or 16 (IPv6) bytes. */
export interface IpRange {
  readonly address: Buffer;
  readonly mask: Buffer;
}

export interface NameConstraints {
  /**
   * DNS subtrees the CA may sign for. As in RFC 5280, `registry.example.com` permits that name and
   * every name under it (`a.registry.example.com`); `.example.com` (only read, never written)
   * permits names under it but not itself; `''` is every name.
   */
  readonly permittedDns: readonly string[];
  readonly excludedDns: readonly string[];
  readonly permittedIps: readonly IpRange[];
  readonly excludedIps: readonly IpRange[];
}

export const NAME_CONSTRAINTS_OID = '2.5.29.30';
const OID_DER = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x1e]);

// Every address of each family, to exclude a family the CA was not made for.
const ALL_IPV4: IpRange = { address: Buffer.alloc(4), mask: Buffer.alloc(4) };
const ALL_IPV6: IpRange = { address: Buffer.alloc(16), mask: Buffer.alloc(16) };

/**
 * The constraints of a CA made for these server names plus `caDomains` (each permitted with its
 * subdomains). A wildcard host `*.example.com` permits `example.com` and what is under it.
 *
 * RFC 5280 constrains only the name types a CA lists: a CA listing no DNS name may sign any DNS
 * name. So a type the CA was not made for is excluded outright (the empty DNS name, and all of
 * IPv4 and IPv6), as the CA/Browser Forum requires of technically constrained CAs.
 */
export function constraintsFor(names: ServerNames, caDomains: readonly string[]): NameConstraints {
  const dns = withoutCovered([...names.hosts.map((h) => h.replace(/^\*\./, '')), ...caDomains.map((d) => d.toLowerCase())]);
  const ips = names.ips.map(({ bytes }) => ({ address: bytes, mask: Buffer.alloc(bytes.length, 0xff) }));
  return {
    permittedDns: dns,
    excludedDns: dns.length === 0 ? [''] : [],
    permittedIps: ips,
    excludedIps: ips.length === 0 ? [ALL_IPV4, ALL_IPV6] : [],
  };
}

/** De-duplicated, and without names another entry already permits (`a.example.com` beside `example.com`). */
function withoutCovered(names: string[]): string[] {
  const unique = [...new Set(names)];
  return unique.filter((name) => !unique.some((other) => other !== name && dnsWithin(name, other)));
}

// The --ca-domain checks are plain text rules, kept with the configuration that uses them.
export { caDomainProblem, parseCaDomains } from '../config/ca-domains.js';

/** The DER value of the nameConstraints extension (to go in an OCTET STRING, marked critical). */
export function encodeNameConstraints(c: NameConstraints): Buffer {
  const subtrees = (dns: readonly string[], ips: readonly IpRange[]) => [
    // GeneralSubtree ::= SEQUENCE { base GeneralName } (minimum 0 and no maximum are the defaults)
    ...dns.map((name) => tlv(0x30, tlv(0x82, Buffer.from(name, 'ascii')))), // dNSName [2] IA5String
    ...ips.map((r) => tlv(0x30, tlv(0x87, Buffer.concat([r.address, r.mask])))), // iPAddress [7]
  ];
  const permitted = subtrees(c.permittedDns, c.permittedIps);
  const excluded = subtrees(c.excludedDns, c.excludedIps);
  return tlv(0x30, ...(permitted.length > 0 ? [tlv(0xa0, ...permitted)] : []), ...(excluded.length > 0 ? [tlv(0xa1, ...excluded)] : []));
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  if (n > 0xffff) throw new RangeError('name constraints too long');
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

interface Tlv {
  readonly tag: number;
  readonly content: Buffer;
}

/** The DER elements one after another in `data`; throws on anything malformed. */
function elements(data: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let at = 0;
  const byte = () => {
    const b = data[at++];
    if (b === undefined) throw new Error('truncated DER');
    return b;
  };
  while (at < data.length) {
    const tag = byte();
    if ((tag & 0x1f) === 0x1f) throw new Error('multi-byte DER tag');
    let length = byte();
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 4) throw new Error('bad DER length');
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + byte();
    }
    if (at + length > data.length) throw new Error('truncated DER');
    out.push({ tag, content: data.subarray(at, at + length) });
    at += length;
  }
  return out;
}

function only(data: Buffer, tag: number): Buffer {
  const [first, ...rest] = elements(data);
  if (first?.tag !== tag || rest.length > 0) throw new Error('unexpected DER structure');
  return first.content;
}

/** The extension's DER value from a certificate (DER), or null when it has none. */
function extensionValue(certDer: Buffer, oid: Buffer): Buffer | null {
  const tbs = elements(only(certDer, 0x30))[0];
  if (tbs?.tag !== 0x30) throw new Error('unexpected DER structure');
  const explicit = elements(tbs.content).find((e) => e.tag === 0xa3); // extensions [3]
  if (explicit === undefined) return null;
  for (const ext of elements(only(explicit.content, 0x30))) {
    const [id, ...rest] = elements(ext.content);
    if (id === undefined || !Buffer.concat([Buffer.from([id.tag, id.content.length]), id.content]).equals(oid)) continue;
    const value = rest.find((e) => e.tag === 0x04);
    if (value === undefined) throw new Error('extension without a value');
    return value.content;
  }
  return null;
}

/** The CA's name constraints, or null when it has none. Throws when the extension cannot be read. */
export function readNameConstraints(certPem: string): NameConstraints | null {
  const value = extensionValue(new X509Certificate(certPem).raw, OID_DER);
  if (value === null) return null;
  const c = { permittedDns: [] as string[], excludedDns: [] as string[], permittedIps: [] as IpRange[], excludedIps: [] as IpRange[] };
  for (const part of elements(only(value, 0x30))) {
    if (part.tag !== 0xa0 && part.tag !== 0xa1) throw new Error('unexpected DER structure');
    const [dns, ips] = part.tag === 0xa0 ? [c.permittedDns, c.permittedIps] : [c.excludedDns, c.excludedIps];
    for (const subtree of elements(part.content)) {
      const [base] = elements(subtree.content);
      if (base?.tag === 0x82) dns.push(base.content.toString('ascii'));
      else if (base?.tag === 0x87 && (base.content.length === 8 || base.content.length === 32)) {
        const half = base.content.length / 2;
        ips.push({ address: base.content.subarray(0, half), mask: base.content.subarray(half) });
      }
      // Other name types (email, directory names, URIs) do not bear on a TLS server's names.
    }
  }
  return c;
}

/** RFC 5280 DNS matching, as OpenSSL and Go do it: equal, or under the constraint; case-insensitive. */
export function dnsWithin(name: string, constraint: string): boolean {
  const n = name.toLowerCase();
  const c = constraint.toLowerCase();
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

function ipWithin(address: Buffer, range: IpRange): boolean {
  if (address.length !== range.address.length) return false; // IPv4 never matches IPv6, as in OpenSSL and Go
  return address.every((byte, i) => (byte & range.mask[i]!) === (range.address[i]! & range.mask[i]!));
}

/**
 * Whether OpenSSL would read this common name as a DNS name, and so check it against DNS
 * constraints when the certificate has no DNS subjectAltName (NAME_CONSTRAINTS_check_CN): letters,
 * digits, `_`, `-` and at least one dot between labels. Node's TLS and curl use OpenSSL.
 */
export function commonNameLooksLikeDns(cn: string): boolean {
  return /^[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*(?:\.[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*)+$/.test(cn);
}

export interface LeafNames {
  readonly dns: readonly string[];
  readonly ips: readonly { text: string; bytes: Buffer }[];
  readonly commonName: string;
}

/** The names of a would-be certificate that clients enforcing the constraints would refuse. */
export function namesOutside(c: NameConstraints, leaf: LeafNames): string[] {
  const dns = leaf.dns.length > 0 ? leaf.dns : commonNameLooksLikeDns(leaf.commonName) ? [leaf.commonName] : [];
  const badDns = dns.filter((name) => !allowed(c.permittedDns, c.excludedDns, (d) => dnsWithin(name, d)));
  const badIps = leaf.ips.filter((ip) => !allowed(c.permittedIps, c.excludedIps, (r) => ipWithin(ip.bytes, r)));
  return [...badDns, ...badIps.map((ip) => ip.text)];
}

/** Within one permitted subtree of its type (when the CA lists any) and no excluded one. */
function allowed<T>(permitted: readonly T[], excluded: readonly T[], within: (subtree: T) => boolean): boolean {
  return (permitted.length === 0 || permitted.some(within)) && !excluded.some(within);
}

/** What the CA may sign for, for messages: `DNS names a.example and the names under them; addresses 10.0.0.5`. */
export function describeConstraints(c: NameConstraints): string {
  const dns = c.permittedDns.map((d) => (d.startsWith('.') ? `*${d}` : d));
  const ips = c.permittedIps.map(describeRange);
  const permitted = [
    dns.length > 0 ? `DNS name${dns.length === 1 ? '' : 's'} ${dns.join(', ')} and the names under ${dns.length === 1 ? 'it' : 'them'}` : null,
    ips.length > 0 ? `address${ips.length === 1 ? '' : 'es'} ${ips.join(', ')}` : null,
  ].filter((p) => p !== null);
  const none = [c.excludedDns.includes('') ? 'no DNS name' : null, c.excludedIps.length > 0 && ips.length === 0 ? 'no IP address' : null].filter((p) => p !== null);
  const text = permitted.length > 0 ? permitted.join('; ') : 'any name';
  return none.length > 0 ? `${text} (${none.join(', ')})` : text;
}

function describeRange(r: IpRange): string {
  const bits = [...r.mask].reduce((sum, byte) => sum + byte.toString(2).replace(/0/g, '').length, 0);
  const text = r.address.length === 4 ? [...r.address].join('.') : new URL(`http://[${r.address.toString('hex').replace(/(.{4})(?!$)/g, '$1:')}]/`).hostname.slice(1, -1);
  return bits === r.address.length * 8 ? text : `${text}/${bits}`;
}
