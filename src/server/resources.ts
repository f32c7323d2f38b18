// Start-up: the configuration, then the files it names, each read by the module that owns it
// (certificates by tls/, users by auth/, the access file by access/). Every problem, of an option
// or of a file, is reported at once, each naming its flag or variable, before anything listens.

import cluster from 'node:cluster';
import type { AccessPolicy } from '../access/policy.js';
import { formatAccessProblem, readAccessFile } from '../access/policy.js';
import { namesAnonymous } from '../access/decide.js';
import { openTokenKeys, type TokenKeys } from '../auth/token-keys.js';
import { formatHtpasswdProblem, readHtpasswdFile } from '../auth/htpasswd.js';
import type { HtpasswdUsers } from '../auth/types.js';
import { invalidConfiguration, parseConfig } from '../config/load.js';
import type { Config, ConfigFiles } from '../config/types.js';
import { openAcmeCertificate } from '../tls/acme.js';
import { openAutoCertificate, type GeneratedCertificate } from '../tls/auto.js';
import { openCertificateFiles } from '../tls/file-source.js';
import { loadClientCa, unconstrainedCaWarning } from '../tls/load.js';
import { checkServerCertificate, namesClientsUse, type CertificateCheck } from '../tls/renew.js';
import type { CertificateSource } from '../tls/source.js';
import { openSessionKey, type SessionKey } from '../web/session-key.js';

/** What the gateway starts from: the configuration and what its files held at start-up. */
export interface GatewaySetup {
  readonly config: Config;
  /** Users as read at start-up (none with `--auth upstream`, which reads no htpasswd file). */
  readonly users: HtpasswdUsers;
  /** The access file and its policy as read at start-up; null: every user may do everything. */
  readonly access: { readonly file: string; readonly policy: AccessPolicy } | null;
  /** The keys of `--auth token`; null in the other modes. */
  readonly tokenKeys: TokenKeys | null;
  /** The secret that signs web UI sessions; null with the UI off. */
  readonly sessionKey: SessionKey | null;
  readonly tls: {
    /** Where the listener's key and chain come from. */
    readonly certificates: CertificateSource;
    /** PEM CA that client certificates must be signed by (mutual TLS), or null. */
    readonly clientCa: string | null;
    /** Set when this start made the certificate itself (no certificate at the default paths). */
    readonly generated: GeneratedCertificate | null;
    /** One-line warnings about the certificate in use, for the primary process to log at start. */
    readonly warnings: readonly string[];
    /**
     * The certificate against the names clients use, as the primary process found it at start
     * (re-issued, or why not); null when it did not look (a worker, or the certificate was just made).
     */
    readonly check: CertificateCheck | null;
    /** Looks again, re-issuing when due (a running gateway's primary does once a day); null when the certificate is not the gateway's. */
    readonly recheck: ((now?: Date) => Promise<CertificateCheck | null>) | null;
  };
}

/** What an htpasswd file that is not read holds: no users, no problems. */
const NO_USERS = Object.freeze({ users: new Map() as HtpasswdUsers, problems: [] as const });

/** Flags and environment, then the files they name; throws CONFIG_INVALID (exit 2) with every problem. */
export async function loadGatewaySetup(
  argv: string[],
  env: Readonly<Record<string, string | undefined>>,
  now = new Date(),
  options: { readonly primary?: boolean } = {},
): Promise<GatewaySetup> {
  const parsed = parseConfig(argv, env);
  const problems = [...parsed.problems];
  const files = await readConfigFiles(parsed.files, now, { configOk: parsed.config !== null, primary: options.primary ?? cluster.isPrimary });
  problems.push(...files.problems);
  if (problems.length > 0 || parsed.config === null || files.setup === null) throw invalidConfiguration(problems);
  return Object.freeze({ config: parsed.config, ...files.setup });
}

/**
 * Reads every file the configuration names, gathering their problems in a fixed order. The
 * certificate comes last: it is made, or re-issued, only when nothing else stops the start.
 */
async function readConfigFiles(
  files: ConfigFiles,
  now: Date,
  options: { readonly configOk: boolean; readonly primary: boolean },
): Promise<{ setup: Omit<GatewaySetup, 'config'> | null; problems: string[] }> {
  const wanted = namesClientsUse(files.clientAddress);
  const clientCa = files.clientCa === null ? null : await loadClientCa(files.clientCa.file, files.clientCa.source);
  const htpasswd = files.htpasswd === null ? NO_USERS : await readHtpasswdFile(files.htpasswd.file);
  const access = files.access === null ? null : await readAccessFile(files.access.file);
  const others = [
    ...(clientCa?.problems ?? []),
    ...htpasswd.problems.map((p) => `${files.htpasswd!.source}: ${formatHtpasswdProblem(p)}`),
    ...(access?.problems ?? []).map((p) => `${files.access!.source}: ${formatAccessProblem(p)}`),
    ...(access?.policy && files.tokenKey === null ? anonymousOutsideTokenMode(access.policy, files.access!.source) : []),
  ];
  const startable = options.configOk && wanted.problems.length === 0 && others.length === 0;
  // The token key is made only by the process that starts first, and only when nothing else stops the start.
  const missing = !startable ? 'ignore' : options.primary ? 'make' : 'problem';
  const token = files.tokenKey === null ? null : await openTokenKeys(files.tokenKey.file, files.tokenKey.source, { missing });
  others.push(...(token?.problems ?? []));
  // One process looks at the certificate against the names clients use: the primary, before any worker starts.
  const looks = startable && options.primary;
  const input = {
    certFile: files.cert.file,
    keyFile: files.key.file,
    managed: files.autoCertificate !== null,
    wanted: wanted.names,
    port: files.clientAddress.port,
    caDomains: files.autoCertificate?.caDomains ?? [],
  };

  let certificates: { source: CertificateSource | null; problems: readonly string[]; generated: GeneratedCertificate | null; check: CertificateCheck | null; warnings: readonly string[] };
  if (files.acme !== null) {
    const opened = startable ? await openAcmeCertificate(files.acme, { issuer: options.primary }) : { source: null, problems: [] };
    certificates = { ...opened, generated: null, check: null, warnings: [] };
  } else if (files.autoCertificate === null) {
    const opened = await openCertificateFiles(files, now);
    certificates = { ...opened, generated: null, check: looks && opened.source !== null ? await checkServerCertificate(input, now) : null, warnings: [] };
  } else {
    certificates = await openAutoCertificate(files, files.autoCertificate, now, { make: startable, renew: looks ? input : null });
  }
  const problems = [...wanted.problems, ...certificates.problems, ...others];
  const source = certificates.source;
  // The web UI's session secret is made last, only for a start that goes on: a refused start
  // leaves no file behind (nor the folder of a certificate path that does not exist).
  const sessionMissing = problems.length === 0 && source !== null && (token === null || token.keys !== null) ? missing : 'ignore';
  const session = files.sessionKey === null ? null : await openSessionKey(files.sessionKey.file, files.sessionKey.source, { missing: sessionMissing });
  problems.push(...(session?.problems ?? []));
  if (problems.length > 0 || source === null || (token !== null && token.keys === null) || (session !== null && session.key === null)) return { setup: null, problems };
  return {
    setup: {
      users: htpasswd.users,
      access: files.access !== null && access?.policy ? Object.freeze({ file: files.access.file, policy: access.policy }) : null,
      tokenKeys: token?.keys ?? null,
      sessionKey: session?.key ?? null,
      tls: Object.freeze({
        certificates: source,
        clientCa: clientCa?.pem ?? null,
        generated: certificates.generated,
        warnings: Object.freeze([...certificates.warnings, unconstrainedCaWarning(source.current().cert, files.cert.file)].filter((w): w is string => w !== null)),
        check: certificates.check,
        recheck: files.autoCertificate !== null && options.primary ? (at: Date = new Date()) => checkServerCertificate(input, at) : null,
      }),
    },
    problems,
  };
}

/** Rules for @anonymous mean nothing without tokens: Basic sign-in has no anonymous requests. */
function anonymousOutsideTokenMode(policy: AccessPolicy, source: string): string[] {
  if (!namesAnonymous(policy)) return [];
  return [`${source}: ${policy.file} has rules for @anonymous (requests without credentials), which only --auth token has: with Basic sign-in every request must log in; set --auth token for public pulls, or remove those rules`];
}
