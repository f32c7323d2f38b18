// When the gateway re-issues its own certificate, and what it says when it cannot: decided over
// real certificates, made in memory by the same code that makes them for users.
import { X509Certificate } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCa, createServerCertificate, normalizeServerNames, type KeyAndCert } from '../../../src/tls/certificates.js';
import { constraintsFor } from '../../../src/tls/name-constraints.js';
import { certificateCheckLog, decideRenewal, namesClientsUse, scheduleCertificateChecks, type CertificateFacts } from '../../../src/tls/renew.js';

const NOW = new Date();
const DAY = 86_400_000;
let ca: KeyAndCert;
let shortCa: KeyAndCert;

function constrainedCa(hosts: string[], ips: string[], days?: number): KeyAndCert {
  return createCa({ days, constraints: constraintsFor(normalizeServerNames(hosts, ips), []) });
}

function facts(issuer: KeyAndCert, names: { hosts: string[]; ips: string[]; days?: number }, more: Partial<CertificateFacts> = {}): CertificateFacts {
  const leaf = new X509Certificate(createServerCertificate(issuer, names).cert);
  return { leaf, ca: { cert: new X509Certificate(issuer.cert), hasKey: true }, managed: true, ...more };
}

const wanted = (hosts: string[], ips: string[] = []) => ({ hosts, ips });

beforeAll(() => {
  ca = constrainedCa(['registry.test', 'localhost'], ['127.0.0.1']);
  shortCa = constrainedCa(['registry.test'], [], 20);
});

describe('decideRenewal', () => {
  it('does nothing when the certificate covers every name clients use and has time left', () => {
    const current = facts(ca, { hosts: ['registry.test', 'localhost'], ips: ['127.0.0.1'] });
    expect(decideRenewal(current, wanted(['registry.test'], ['127.0.0.1']), NOW)).toEqual({ action: 'none' });
    expect(decideRenewal(current, wanted([]), NOW)).toEqual({ action: 'none' });
  });

  it('re-issues for a new name within the CA, keeping every name it had', () => {
    const current = facts(ca, { hosts: ['registry.test', 'localhost'], ips: ['127.0.0.1'] });
    expect(decideRenewal(current, wanted(['eu.registry.test'], ['127.0.0.1']), NOW)).toEqual({
      action: 'reissue',
      hosts: ['registry.test', 'localhost', 'eu.registry.test'],
      ips: ['127.0.0.1'],
      added: ['eu.registry.test'],
      expiring: false,
    });
  });

  it('counts a name a wildcard in the certificate covers as covered, and an asked-for wildcard only when it is there', () => {
    const current = facts(ca, { hosts: ['*.registry.test'], ips: [] });
    expect(decideRenewal(current, wanted(['eu.registry.test']), NOW)).toEqual({ action: 'none' });
    expect(decideRenewal(current, wanted(['*.registry.test']), NOW)).toEqual({ action: 'none' });
    expect(decideRenewal(current, wanted(['a.b.registry.test']), NOW)).toMatchObject({ action: 'reissue', added: ['a.b.registry.test'] });
  });

  it('re-issues a certificate within 30 days of its end, with the same names', () => {
    expect(decideRenewal(facts(ca, { hosts: ['registry.test'], ips: [], days: 29 }), wanted([]), NOW)).toEqual({
      action: 'reissue', hosts: ['registry.test'], ips: [], added: [], expiring: true,
    });
    expect(decideRenewal(facts(ca, { hosts: ['registry.test'], ips: [], days: 31 }), wanted([]), NOW)).toEqual({ action: 'none' });
  });

  it('asks for a new CA when a name lies outside the CA\'s constraints, naming it', () => {
    const decision = decideRenewal(facts(ca, { hosts: ['registry.test'], ips: [] }), wanted(['registry.other'], ['10.0.0.9']), NOW);
    expect(decision).toMatchObject({ action: 'new-ca', outside: ['registry.other', '10.0.0.9'], missing: ['registry.other', '10.0.0.9'], hosts: ['registry.test', 'registry.other'], ips: ['10.0.0.9'] });
    expect(decision.action === 'new-ca' && decision.why).toContain('which allow only DNS names registry.test, localhost');
  });

  it('asks for a new CA when the CA itself ends within 30 days: a certificate from it could not outlive it', () => {
    const decision = decideRenewal(facts(shortCa, { hosts: ['registry.test'], ips: [] }), wanted([]), NOW);
    expect(decision).toMatchObject({ action: 'new-ca', outside: [], expiring: true });
    expect(decision.action === 'new-ca' && decision.why).toMatch(/^the CA itself expires on \d{4}-\d\d-\d\d$/);
  });

  it('without the CA key, says which names are missing instead', () => {
    const current = facts(ca, { hosts: ['registry.test'], ips: [] });
    const noKey = { ...current, ca: { cert: current.ca!.cert, hasKey: false } };
    expect(decideRenewal(noKey, wanted(['eu.registry.test']), NOW)).toEqual({ action: 'ca-key-missing', missing: ['eu.registry.test'], expiring: false });
    expect(decideRenewal(noKey, wanted(['registry.test']), NOW)).toEqual({ action: 'none' });
  });

  it('never re-issues a certificate it may not replace or whose CA is not beside it, only names what it lacks', () => {
    const byo = facts(ca, { hosts: ['registry.test'], ips: [], days: 5 }, { managed: false });
    expect(decideRenewal(byo, wanted(['eu.registry.test']), NOW)).toEqual({ action: 'not-ours', missing: ['eu.registry.test'] });
    expect(decideRenewal({ ...byo, managed: true, ca: null }, wanted(['registry.test']), NOW)).toEqual({ action: 'not-ours', missing: [] });
    expect(certificateCheckLog({ kind: 'not-ours', certFile: 'c.crt', missing: [], why: 'x' })).toBeNull();
  });
});

describe('namesClientsUse', () => {
  it('takes the public host (brackets off an IPv6 one) and the --tls-san entries, once each, in lower case', () => {
    const address = { publicUrl: new URL('https://[fd00::5]:5443'), publicUrlSource: '--public-url', extraSans: ['Registry.Test', '10.0.0.5', 'registry.test'], extraSansSource: 'GATEWAY_TLS_SANS' };
    expect(namesClientsUse(address)).toEqual({ names: { hosts: ['registry.test'], ips: ['fd00::5', '10.0.0.5'] }, problems: [] });
  });

  it('names the option a name that cannot be in a certificate came from', () => {
    const address = { publicUrl: new URL('https://my_host:5443'), publicUrlSource: 'GATEWAY_PUBLIC_URL', extraSans: ['bad_name', 'ok.test'], extraSansSource: '--tls-san' };
    const { names, problems } = namesClientsUse(address);
    expect(names).toEqual({ hosts: ['ok.test'], ips: [] });
    expect(problems).toEqual([expect.stringMatching(/^GATEWAY_PUBLIC_URL: "my_host" cannot be a host name/), expect.stringMatching(/^--tls-san: "bad_name" cannot be a host name/)]);
  });
});

describe('scheduleCertificateChecks', () => {
  afterEach(() => vi.useRealTimers());

  it('looks again once a day until stopped, without keeping the process alive', () => {
    vi.useFakeTimers();
    const check = vi.fn(() => Promise.resolve());
    const stop = scheduleCertificateChecks(check);
    vi.advanceTimersByTime(DAY - 1);
    expect(check).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(check).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(DAY);
    expect(check).toHaveBeenCalledTimes(2);
    stop();
    vi.advanceTimersByTime(3 * DAY);
    expect(check).toHaveBeenCalledTimes(2);
  });
});
