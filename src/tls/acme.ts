// The certificate source of `--acme`: a certificate from an ACME CA (Let's Encrypt, or any RFC
// 8555 directory), got and renewed by acme-client (no ACME or JWS code of ours). Until the first
// certificate arrives the listener serves a stand-in the gateway makes itself, and /readyz says
// the gateway is not ready; from then on the stored certificate is served, also after a restart,
// and renewed two thirds into its lifetime, with retries that back off. If the CA cannot be
// reached for a renewal, the current certificate keeps serving and the log says when it expires.
// Only the process that talks to the CA (the primary) issues; --workers processes follow the
// stored files, as with --tls-cert.

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AcmeSettings } from '../config/types.js';
import { acmeProblem, issue, unreachable } from './acme-order.js';
import { acmeFiles, describeStored, readStoredCertificate, renewalTime, serves, type AcmeFiles, type StoredCertificate } from './acme-store.js';
import { createCa, createServerCertificate } from './certificates.js';
import { certificateFileSource } from './file-source.js';
import { changeListeners, type CertificateChallenges, type CertificatePair, type CertificateSource } from './source.js';

export interface AcmeSource extends CertificateSource {
  /** Whether a certificate from the CA is in force (not the stand-in). */
  ready(): boolean;
  waiting(): string | null;
  readonly challenges: CertificateChallenges;
  /** What `certs show` and the log report: the certificate in force and its next renewal; null before the first. */
  status(): { readonly certificate: StoredCertificate; readonly renewAt: Date } | null;
  /**
   * The TLS-ALPN-01 certificates of the open order, for the other --workers processes (a
   * validator's connection may reach any of them): `listener` hears each change, at once the current set.
   */
  shareChallenges(listener: (challenges: ChallengeSet) => void): () => void;
  /** In a process that does not talk to the CA: the challenges the issuing process shared. */
  takeChallenges(challenges: ChallengeSet): void;
}

export function isAcmeSource(source: CertificateSource): source is AcmeSource {
  return 'shareChallenges' in source;
}

/** TLS-ALPN-01 certificates by the name validated, as passed between processes. */
export type ChallengeSet = ReadonlyArray<readonly [string, CertificatePair]>;

export interface AcmeOptions {
  /** Whether this process talks to the CA (the primary); the others follow the stored files. */
  readonly issuer: boolean;
  /** Waits after attempts that could not reach the CA, then after ones it refused; the last of each repeats. */
  readonly retryDelaysMs?: { readonly unreachable: readonly number[]; readonly refused: readonly number[] };
  readonly now?: () => Date;
}

// A CA out of reach is asked again soon; one that refused, rarely: CAs limit failed validations
// (Let's Encrypt: five an hour per name and account).
const DEFAULT_RETRY_MS = {
  unreachable: [5_000, 15_000, 60_000, 300_000, 900_000, 3_600_000],
  refused: [60_000, 300_000, 900_000, 3_600_000, 6 * 3_600_000],
};
// setTimeout takes at most 2^31-1 ms; a renewal months away is waited for in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Opens the stored certificate (or a stand-in) and says what is wrong with the settings' files. */
export async function openAcmeCertificate(settings: AcmeSettings, options: AcmeOptions): Promise<{ source: AcmeSource | null; problems: string[] }> {
  const now = options.now ?? (() => new Date());
  let caPem: string | null = null;
  if (settings.caCertFile !== null) {
    try {
      caPem = await readFile(settings.caCertFile, 'utf8');
    } catch (err) {
      return { source: null, problems: [`--acme-ca-cert: cannot read ${settings.caCertFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`] };
    }
  }
  const files = acmeFiles(settings.folder, settings.directoryUrl);
  const stored = await readStoredCertificate(files);
  const usable = stored !== null && serves(stored, settings.domains, now()) ? stored : null;
  return { source: acmeSource(settings, files, usable, caPem, options), problems: [] };
}

function acmeSource(settings: AcmeSettings, files: AcmeFiles, stored: StoredCertificate | null, caPem: string | null, options: AcmeOptions): AcmeSource {
  const now = options.now ?? (() => new Date());
  const retryDelays = options.retryDelaysMs ?? DEFAULT_RETRY_MS;
  const listeners = changeListeners();
  let inForce: StoredCertificate | null = stored;
  let current: CertificatePair = stored ?? standIn(settings.domains);
  let log: Logger | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let failures = 0;
  let follower: CertificateSource | null = null;
  // Cut short on close(): a request to the CA in flight, and the wait between looks at a pending
  // challenge, so that a gateway told to stop does not wait for the CA.
  const stopping = new AbortController();
  const sharing = new Set<(challenges: ChallengeSet) => void>();
  const alpn = challengeCertificates((all) => {
    for (const listener of sharing) listener(all);
  });
  const http = new Map<string, string>();

  const take = (certificate: StoredCertificate) => {
    inForce = certificate;
    current = certificate;
    listeners.emit(certificate);
  };

  const schedule = (at: Date) => {
    if (closed) return;
    if (timer !== null) clearTimeout(timer);
    const wait = Math.max(0, at.getTime() - now().getTime());
    timer = setTimeout(() => (wait > MAX_TIMER_MS ? schedule(at) : void renew()), Math.min(wait, MAX_TIMER_MS));
    timer.unref();
  };

  const renew = async (): Promise<boolean> => {
    try {
      const certificate = await issue(settings, files, caPem, { alpn, http }, log, stopping.signal);
      failures = 0;
      take(certificate);
      const renewAt = renewalTime(certificate);
      log?.info({ acme: settings.directoryUrl, names: certificate.names, notAfter: certificate.notAfter.toISOString(), renewAt: renewAt.toISOString() }, 'ACME certificate issued and in use for new connections');
      schedule(renewAt);
      return true;
    } catch (err) {
      if (closed) return false;
      const delays = unreachable(err) ? retryDelays.unreachable : retryDelays.refused;
      const wait = delays[Math.min(failures, delays.length - 1)]!;
      failures++;
      const retryAt = new Date(now().getTime() + wait);
      const expiry = inForce === null ? 'no certificate from the CA yet: clients get a stand-in they will not trust, and /readyz says not ready' : `the current certificate keeps serving until it expires on ${inForce.notAfter.toISOString()}`;
      log?.error(
        { acme: settings.directoryUrl, names: settings.domains, reason: acmeProblem(err), retryInSeconds: Math.round(wait / 1000), retryAt: retryAt.toISOString(), ...(inForce === null ? {} : { notAfter: inForce.notAfter.toISOString() }) },
        `ACME certificate not issued: ${acmeProblem(err)}; ${expiry}; trying again in ${Math.round(wait / 1000)} s (${retryAt.toISOString()})`,
      );
      schedule(retryAt);
      return false;
    }
  };

  return {
    current: () => current,
    onChange: listeners.add,
    ready: () => inForce !== null,
    waiting: () => {
      if (inForce === null) return `no certificate from the ACME CA yet for ${settings.domains.join(', ')}`;
      // Renewal kept failing until the certificate ran out: clients now refuse it.
      if (inForce.notAfter <= now()) return `the ACME certificate expired on ${inForce.notAfter.toISOString()} and could not be renewed`;
      return null;
    },
    status: () => (inForce === null ? null : { certificate: inForce, renewAt: renewalTime(inForce) }),
    challenges: {
      pending: () => alpn.size > 0 || http.size > 0,
      certificateFor: (serverName) => alpn.get(serverName.toLowerCase()) ?? null,
      keyAuthorization: (token) => http.get(token) ?? null,
    },
    shareChallenges(listener) {
      sharing.add(listener);
      listener(alpn.entries());
      return () => void sharing.delete(listener);
    },
    takeChallenges(challenges) {
      alpn.replace(challenges);
    },
    start(logger) {
      log = logger;
      if (!options.issuer) {
        // A worker: the primary writes the files; take each new pair it stores.
        follower = certificateFileSource(files.cert, files.key, current);
        follower.onChange((pair) => take(describeStored(pair)));
        follower.start(logger);
        return;
      }
      if (inForce === null) void renew();
      else schedule(renewalTime(inForce));
    },
    reload: async () => (follower === null ? true : follower.reload()),
    close() {
      closed = true;
      stopping.abort();
      if (timer !== null) clearTimeout(timer);
      follower?.close();
    },
  };
}

/** The TLS-ALPN-01 certificates of the open order, telling `changed` after every change. */
function challengeCertificates(changed: (all: ChallengeSet) => void) {
  const byName = new Map<string, CertificatePair>();
  const tell = () => changed([...byName.entries()]);
  return {
    get: (name: string) => byName.get(name),
    get size() {
      return byName.size;
    },
    entries: (): ChallengeSet => [...byName.entries()],
    set(name: string, pair: CertificatePair) {
      byName.set(name, pair);
      tell();
    },
    delete(name: string) {
      if (byName.delete(name)) tell();
    },
    replace(all: ChallengeSet) {
      byName.clear();
      for (const [name, pair] of all) byName.set(name, pair);
    },
  };
}

/** A self-made certificate for the names, served until the CA's arrives (nobody should trust it). */
function standIn(domains: readonly string[]): CertificatePair {
  const ca = createCa({ commonName: 'registry-gateway stand-in (waiting for the ACME CA)', days: 7 });
  return createServerCertificate(ca, { hosts: [...domains], ips: [], days: 7 });
}
