// Keeping a certificate the gateway made itself in step with how clients reach it. A server
// certificate issued by the CA beside it (DIR/ca.crt and DIR/ca.key, as `certs init` and a first
// start lay them out) is re-issued from that same CA, so clients that trust it need no change,
// when it lacks a name clients use (--public-url's host, --tls-san) or is within 30 days of its
// end. It keeps every name it had. A certificate the gateway did not make is never touched: a
// name it lacks is only reported.

import { X509Certificate } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import type { ClientAddress } from '../config/types.js';
import { isGatewayError } from '../errors.js';
import { shellWord, writeServerCertificate } from './cert-files.js';
import { describeCertificate, normalizeServerNames, urlHostName } from './certificates.js';
import { describeConstraints, namesOutside, readNameConstraints } from './name-constraints.js';

/** A certificate this close to its end is re-issued. */
export const RENEW_WITHIN_DAYS = 30;
/** How often a running gateway looks again. */
export const CHECK_EVERY_MS = 86_400_000;
const DAY_MS = 86_400_000;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

export interface Names {
  /** DNS names, lower case. */
  readonly hosts: readonly string[];
  readonly ips: readonly string[];
}

/** The names clients use, from --public-url and --tls-san, each checked; a problem names its option. */
export function namesClientsUse(address: Pick<ClientAddress, 'publicUrl' | 'publicUrlSource' | 'extraSans' | 'extraSansSource'>): { names: Names; problems: string[] } {
  const hosts: string[] = [];
  const ips: string[] = [];
  const problems: string[] = [];
  const add = (name: string, source: string) => {
    const ip = isIP(name) !== 0;
    try {
      normalizeServerNames(ip ? [] : [name], ip ? [name] : []);
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      problems.push(`${source}: ${err.message}`);
      return;
    }
    if (ip) ips.push(name);
    else hosts.push(name.toLowerCase());
  };
  if (address.publicUrl !== null) add(urlHostName(address.publicUrl), address.publicUrlSource);
  for (const name of address.extraSans) add(name, address.extraSansSource);
  return { names: { hosts: [...new Set(hosts)], ips: [...new Set(ips)] }, problems };
}

/** What is known of a server certificate and the CA beside it. */
export interface CertificateFacts {
  readonly leaf: X509Certificate;
  /** The CA in the same folder when it issued the certificate; null when there is none or another did. */
  readonly ca: { readonly cert: X509Certificate; readonly hasKey: boolean } | null;
  /** Whether the gateway may replace the certificate: false for paths given explicitly. */
  readonly managed: boolean;
}

export type RenewalDecision =
  | { readonly action: 'none' }
  | { readonly action: 'reissue'; readonly hosts: string[]; readonly ips: string[]; readonly added: string[]; readonly expiring: boolean }
  /** The CA cannot issue what is needed: `outside` are the names it may not sign for (none when the CA itself is about to end). */
  | { readonly action: 'new-ca'; readonly hosts: string[]; readonly ips: string[]; readonly missing: string[]; readonly expiring: boolean; readonly outside: string[]; readonly why: string }
  | { readonly action: 'ca-key-missing'; readonly missing: string[]; readonly expiring: boolean }
  /** Not the gateway's to replace; `missing` may be empty. */
  | { readonly action: 'not-ours'; readonly missing: string[] };

/** What to do about a certificate, given the names clients use. */
export function decideRenewal(facts: CertificateFacts, wanted: Names, now: Date): RenewalDecision {
  const missingHosts = wanted.hosts.filter((host) => !coversHost(facts.leaf, host));
  const missingIps = wanted.ips.filter((ip) => facts.leaf.checkIP(ip) === undefined);
  const missing = [...missingHosts, ...missingIps];
  if (!facts.managed || facts.ca === null) return { action: 'not-ours', missing };
  const expiring = new Date(facts.leaf.validTo).getTime() - now.getTime() < RENEW_WITHIN_DAYS * DAY_MS;
  if (missing.length === 0 && !expiring) return { action: 'none' };
  const current = certificateNames(facts.leaf);
  const hosts = [...new Set([...current.hosts, ...missingHosts])];
  const ips = [...new Set([...current.ips, ...missingIps])];
  const outside = namesOutsideCa(facts.ca.cert, hosts, ips);
  if (outside.length > 0) {
    const are = outside.length === 1 ? 'is' : 'are';
    return { action: 'new-ca', hosts, ips, missing, expiring, outside, why: `${outside.join(', ')} ${are} outside its name constraints, which allow only ${caLimits(facts.ca.cert)}` };
  }
  const caEnd = new Date(facts.ca.cert.validTo);
  if (caEnd.getTime() - now.getTime() < RENEW_WITHIN_DAYS * DAY_MS) {
    return { action: 'new-ca', hosts, ips, missing, expiring, outside: [], why: `the CA itself ${caEnd <= now ? 'expired' : 'expires'} on ${day(caEnd)}` };
  }
  if (!facts.ca.hasKey) return { action: 'ca-key-missing', missing, expiring };
  return { action: 'reissue', hosts, ips, added: missing, expiring };
}

/** A wildcard asked for must be in the certificate as such; any other name as a client would match it. */
function coversHost(leaf: X509Certificate, host: string): boolean {
  if (host.startsWith('*.')) return certificateNames(leaf).hosts.includes(host);
  return leaf.checkHost(host) !== undefined;
}

/** The DNS names and IP addresses in the certificate's subjectAltName. */
function certificateNames(leaf: X509Certificate): { hosts: string[]; ips: string[] } {
  const sans = describeCertificate(leaf.toString()).sans;
  return {
    hosts: sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase()),
    ips: sans.filter((s) => s.startsWith('IP:')).map((s) => s.slice(3)),
  };
}

function namesOutsideCa(ca: X509Certificate, hosts: string[], ips: string[]): string[] {
  let constraints;
  try {
    constraints = readNameConstraints(ca.toString());
  } catch {
    return []; // signing refuses such a CA with its own message
  }
  if (constraints === null) return [];
  const names = normalizeServerNames(hosts, ips);
  return namesOutside(constraints, { dns: names.hosts, ips: names.ips, commonName: names.hosts[0] ?? '' });
}

function caLimits(ca: X509Certificate): string {
  try {
    const constraints = readNameConstraints(ca.toString());
    return constraints === null ? 'any name' : describeConstraints(constraints);
  } catch {
    return 'names that cannot be read from it';
  }
}

export interface CertificateCheckInput {
  readonly certFile: string;
  readonly keyFile: string;
  /** Whether the gateway may replace the certificate (the CA must still be beside it and have issued it). */
  readonly managed: boolean;
  readonly wanted: Names;
  /** Validity of a re-issued certificate in days (default: as certs server). */
  readonly days?: number;
  /** For the commands suggested: the port clients use, and --ca-domain suffixes for a new CA. */
  readonly port?: number;
  readonly caDomains?: readonly string[];
}

export type CertificateCheck =
  | { readonly kind: 'current'; readonly certFile: string; readonly names: string[]; readonly notAfter: Date }
  | { readonly kind: 'renewed'; readonly certFile: string; readonly caFile: string; readonly added: string[]; readonly expiring: Date | null; readonly names: string[]; readonly notAfter: Date }
  | { readonly kind: 'new-ca-needed'; readonly certFile: string; readonly caFile: string; readonly missing: string[]; readonly expiring: Date | null; readonly outside: string[]; readonly why: string; readonly command: string }
  | { readonly kind: 'ca-key-missing'; readonly certFile: string; readonly caFile: string; readonly caKey: string; readonly missing: string[]; readonly expiring: Date | null; readonly command: string }
  | { readonly kind: 'not-ours'; readonly certFile: string; readonly missing: string[]; readonly why: string };

/**
 * Looks at the certificate in certFile and re-issues it from the CA beside it when needed (see the
 * top of this file). Null when the certificate cannot be read (loading reports that); throws when
 * re-issuing fails.
 */
export async function checkServerCertificate(input: CertificateCheckInput, now = new Date()): Promise<CertificateCheck | null> {
  const dir = dirname(input.certFile);
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const leaf = await readLeaf(input.certFile);
  if (leaf === null) return null;
  const caCert = await readLeaf(caFile);
  const issued = caCert !== null && caCert.ca && leaf.checkIssued(caCert) && leaf.verify(caCert.publicKey);
  const facts: CertificateFacts = {
    leaf,
    ca: issued ? { cert: caCert, hasKey: await exists(caKey) } : null,
    managed: input.managed && dirname(input.keyFile) === dir,
  };
  const decision = decideRenewal(facts, input.wanted, now);
  const notAfter = new Date(leaf.validTo);
  const expiringDate = (expiring: boolean) => (expiring ? notAfter : null);
  switch (decision.action) {
    case 'none':
      return { kind: 'current', certFile: input.certFile, names: namesOf(leaf), notAfter };
    case 'not-ours': {
      const why = !facts.managed ? 'its path was given by --tls-cert/--tls-key' : caCert === null ? `there is no ${caFile} beside it` : `${caFile} did not issue it`;
      return { kind: 'not-ours', certFile: input.certFile, missing: decision.missing, why };
    }
    case 'new-ca': {
      const words = [
        'registry-gateway certs init --force --out', shellWord(dir),
        ...decision.hosts.flatMap((h) => ['--host', shellWord(h)]),
        ...decision.ips.flatMap((ip) => ['--ip', shellWord(ip)]),
        ...(input.caDomains ?? []).flatMap((d) => ['--ca-domain', shellWord(d)]),
        ...(input.port === undefined || input.port === 443 ? [] : ['--port', String(input.port)]),
      ];
      return { kind: 'new-ca-needed', certFile: input.certFile, caFile, missing: decision.missing, expiring: expiringDate(decision.expiring), outside: decision.outside, why: decision.why, command: words.join(' ') };
    }
    case 'ca-key-missing': {
      const command = ['registry-gateway certs renew --out', shellWord(dir), ...decision.missing.flatMap((n) => ['--tls-san', shellWord(n)])].join(' ');
      return { kind: 'ca-key-missing', certFile: input.certFile, caFile, caKey, missing: decision.missing, expiring: expiringDate(decision.expiring), command };
    }
    case 'reissue': {
      await writeServerCertificate(dir, { hosts: decision.hosts, ips: decision.ips, days: input.days, force: true });
      const renewed = await readLeaf(input.certFile);
      if (renewed === null) throw new Error(`${input.certFile} cannot be read back after re-issuing it`);
      return {
        kind: 'renewed',
        certFile: input.certFile,
        caFile,
        added: decision.added,
        expiring: expiringDate(decision.expiring),
        names: namesOf(renewed),
        notAfter: new Date(renewed.validTo),
      };
    }
  }
}

export interface LogLine {
  readonly level: 'info' | 'warn';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** The one log line a check deserves; null when there is nothing to say. */
export function certificateCheckLog(check: CertificateCheck | null): LogLine | null {
  if (check === null) return null;
  switch (check.kind) {
    case 'current':
      return null;
    case 'renewed': {
      const why = [
        check.added.length > 0 ? `it did not cover ${check.added.join(', ')}, which clients use (--public-url, --tls-san)` : null,
        check.expiring !== null ? `it was due to expire on ${day(check.expiring)}` : null,
      ].filter((w) => w !== null);
      const trust = check.added.length > 0 ? '; registry-gateway certs trust prints the trust paths for the new names' : '';
      return {
        level: 'info',
        fields: { cert: check.certFile, ca: check.caFile, added: check.added, names: check.names, notAfter: check.notAfter.toISOString() },
        message: `re-issued ${check.certFile} from the CA in ${check.caFile}, which clients already trust, because ${why.join(' and ')}: it now covers ${check.names.join(', ')} and is valid until ${day(check.notAfter)}${trust}`,
      };
    }
    case 'new-ca-needed':
      return {
        level: 'warn',
        fields: { cert: check.certFile, ca: check.caFile, missing: check.missing, outside: check.outside },
        message: `${check.certFile} ${needs(check.missing, check.expiring)}, but the CA in ${check.caFile} cannot issue a certificate that does: ${check.why}. Nothing was changed. A new CA is needed; make one with: ${check.command} and then every client must trust the new ca.crt (registry-gateway certs trust prints how)`,
      };
    case 'ca-key-missing':
      return {
        level: 'warn',
        fields: { cert: check.certFile, caKey: check.caKey, missing: check.missing },
        message: `${check.certFile} ${needs(check.missing, check.expiring)}, but ${check.caKey} is missing (kept offline?), so it cannot be re-issued here. Where the CA key is (or with it put back beside ${check.caFile}), run: ${check.command}; clients that trust ${check.caFile} need no change`,
      };
    case 'not-ours':
      return check.missing.length === 0
        ? null
        : {
            level: 'warn',
            fields: { cert: check.certFile, missing: check.missing },
            message: `${check.certFile} does not cover ${check.missing.join(', ')}, which clients use (--public-url, --tls-san): they will refuse it under ${check.missing.length === 1 ? 'that name' : 'those names'}. The gateway did not make it (${check.why}), so it leaves it as it is: replace it with one that covers ${check.missing.length === 1 ? 'it' : 'them'}`,
          };
  }
}

/** Runs `check` once a day without keeping the process alive; returns a function that stops it. */
export function scheduleCertificateChecks(check: () => Promise<void>, everyMs = CHECK_EVERY_MS): () => void {
  const timer = setInterval(() => void check(), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

function needs(missing: readonly string[], expiring: Date | null): string {
  return [missing.length > 0 ? `does not cover ${missing.join(', ')}, which clients use (--public-url, --tls-san)` : null, expiring !== null ? `expires on ${day(expiring)}` : null]
    .filter((w) => w !== null)
    .join(' and ');
}

function namesOf(leaf: X509Certificate): string[] {
  const names = certificateNames(leaf);
  return [...names.hosts, ...names.ips];
}

/** `2027-05-04`: a certificate's end, to the day. */
export function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

async function readLeaf(file: string): Promise<X509Certificate | null> {
  try {
    const block = PEM_CERT.exec(await readFile(file, 'utf8'));
    return block === null ? null : new X509Certificate(block[0]);
  } catch {
    return null;
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
