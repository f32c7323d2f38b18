// Name constraints of the CA the gateway makes: what they permit, how they are encoded, and the
// matching rules (RFC 5280, as OpenSSL and Go apply them) used to refuse a certificate clients would.
import { describe, expect, test } from 'vitest';
import { normalizeServerNames } from '../../../src/tls/certificates.js';
import {
  caDomainProblem,
  commonNameLooksLikeDns,
  constraintsFor,
  describeConstraints,
  dnsWithin,
  encodeNameConstraints,
  namesOutside,
  parseCaDomains,
  type NameConstraints,
} from '../../../src/tls/name-constraints.js';

const names = (hosts: string[], ips: string[]) => normalizeServerNames(hosts, ips);
const leafNames = (dns: string[], ips: string[] = [], commonName = 'leaf') => ({
  dns,
  ips: ips.length === 0 ? [] : normalizeServerNames([], ips).ips,
  commonName,
});

describe('constraintsFor', () => {
  test('permits each host (a wildcard as its parent), each --ca-domain, and each address exactly', () => {
    const c = constraintsFor(names(['Registry.Example.com', '*.apps.example.net', 'localhost'], ['10.0.0.5', '::1']), ['Corp.Example']);
    expect(c.permittedDns).toEqual(['registry.example.com', 'apps.example.net', 'localhost', 'corp.example']);
    expect(c.permittedIps.map((r) => [r.address.toString('hex'), r.mask.toString('hex')])).toEqual([
      ['0a000005', 'ffffffff'],
      ['00000000000000000000000000000001', 'ffffffffffffffffffffffffffffffff'],
    ]);
    expect(c.excludedDns).toEqual([]);
    expect(c.excludedIps).toEqual([]);
  });

  test('drops a name a --ca-domain already covers', () => {
    expect(constraintsFor(names(['registry.example.com'], []), ['example.com']).permittedDns).toEqual(['example.com']);
  });

  test('excludes a whole name type the CA was not made for, which RFC 5280 would otherwise leave open', () => {
    const hostsOnly = constraintsFor(names(['registry.example.com'], []), []);
    expect(hostsOnly.excludedIps.map((r) => r.address.length)).toEqual([4, 16]);
    expect(hostsOnly.excludedIps.every((r) => r.mask.every((b) => b === 0))).toBe(true);
    expect(namesOutside(hostsOnly, leafNames(['registry.example.com'], ['8.8.8.8', '2001:db8::1']))).toEqual(['8.8.8.8', '2001:db8::1']);
    const ipsOnly = constraintsFor(names([], ['10.0.0.5']), []);
    expect(ipsOnly.excludedDns).toEqual(['']);
    expect(namesOutside(ipsOnly, leafNames(['www.example.com'], ['10.0.0.5']))).toEqual(['www.example.com']);
  });
});

describe('encodeNameConstraints', () => {
  test('is the DER openssl and Go expect: permitted [0] and excluded [1] GeneralSubtrees of dNSName [2] and iPAddress [7]', () => {
    const c: NameConstraints = {
      permittedDns: ['a.example'],
      excludedDns: [],
      permittedIps: [],
      excludedIps: [{ address: Buffer.from([0, 0, 0, 0]), mask: Buffer.from([0, 0, 0, 0]) }],
    };
    const dnsName = Buffer.from('a.example').toString('hex');
    expect(encodeNameConstraints(c).toString('hex')).toBe(`301d a00d 300b 8209 ${dnsName} a10c 300a 8708 00000000 00000000`.replace(/ /g, ''));
  });

  test('uses long-form lengths for many names', () => {
    const many = Array.from({ length: 40 }, (_, i) => `host-${i}.registry.example.com`);
    const der = encodeNameConstraints(constraintsFor(names(many, ['10.0.0.1']), []));
    expect(der[0]).toBe(0x30);
    expect(der[1]).toBe(0x82); // two length bytes follow
    expect(der.readUInt16BE(2)).toBe(der.length - 4);
  });
});

describe('matching', () => {
  test.each([
    ['registry.example.com', 'registry.example.com', true],
    ['A.Registry.Example.com', 'registry.example.com', true],
    ['xregistry.example.com', 'registry.example.com', false],
    ['example.com', 'registry.example.com', false],
    ['registry.example.com.evil.test', 'registry.example.com', false],
    ['*.example.com', 'example.com', true],
    ['example.com', '.example.com', false],
    ['a.example.com', '.example.com', true],
    ['anything.test', '', true],
  ])('%s within %j: %s', (name, constraint, expected) => {
    expect(dnsWithin(name, constraint)).toBe(expected);
  });

  test('an IPv4 address never matches an IPv6 range, nor the reverse', () => {
    const c = constraintsFor(names(['r.example'], ['10.0.0.5']), []);
    expect(namesOutside(c, leafNames(['r.example'], ['10.0.0.5']))).toEqual([]);
    expect(namesOutside(c, leafNames(['r.example'], ['::ffff:10.0.0.5', '10.0.0.50']))).toEqual(['::ffff:10.0.0.5', '10.0.0.50']);
  });

  test('without a DNS name, a common name OpenSSL reads as one is checked too', () => {
    const c = constraintsFor(names(['registry.example.com'], []), []);
    expect(namesOutside(c, leafNames([], [], 'www.example.com'))).toEqual(['www.example.com']);
    expect(namesOutside(c, leafNames([], [], 'alice'))).toEqual([]);
    expect(namesOutside(c, leafNames(['registry.example.com'], [], 'www.example.com'))).toEqual([]); // a DNS SAN: CN ignored
  });

  test.each([
    ['www.example.com', true],
    ['192.0.2.7', true],
    ['ci_runner.x', true],
    ['a--b.c', true],
    ['alice', false],
    ['registry-gateway server', false],
    ['-a.b', false],
    ['a.-b', false],
    ['a..b', false],
    ['a.b.', false],
    ['::1', false],
  ])('OpenSSL reads the CN %j as a DNS name: %s', (cn, expected) => {
    expect(commonNameLooksLikeDns(cn)).toBe(expected);
  });
});

describe('--ca-domain values', () => {
  test('takes DNS suffixes, lower-cased, comma-separated or repeated, each once', () => {
    expect(parseCaDomains(['Example.com, corp.example', 'example.com'])).toEqual({ domains: ['example.com', 'corp.example'], problems: [] });
  });

  test.each([
    ['', 'empty'],
    ['com', 'single label'],
    ['*.example.com', 'write it as example.com'],
    ['.example.com', 'write it as example.com'],
    ['10.0.0.0', 'IP address'],
    ['bad_name.example', 'not a DNS name'],
    ['-a.example', 'not a DNS name'],
  ])('refuses %j (%s)', (value, words) => {
    const result = caDomainProblem(value);
    expect(result).toEqual({ problem: expect.stringContaining(words) });
  });
});

describe('describeConstraints', () => {
  test('says what the CA may sign for, in words', () => {
    expect(describeConstraints(constraintsFor(names(['a.example', 'b.example'], ['10.0.0.5', 'fd00::5']), []))).toBe(
      'DNS names a.example, b.example and the names under them; addresses 10.0.0.5, fd00::5',
    );
    expect(describeConstraints(constraintsFor(names(['a.example'], []), []))).toBe('DNS name a.example and the names under it (no IP address)');
    expect(describeConstraints(constraintsFor(names([], ['10.0.0.5']), []))).toBe('address 10.0.0.5 (no DNS name)');
  });
});
