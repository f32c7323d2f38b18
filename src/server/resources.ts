// Start-up: the configuration, then the files it names, each read by the module that owns it
// (certificates by tls/, users by auth/, the access file by access/). Every problem, of an option
// or of a file, is reported at once, each naming its flag or variable, before anything listens.

import type { AccessPolicy } from '../access/policy.js';
import { formatAccessProblem, readAccessFile } from '../access/policy.js';
import { formatHtpasswdProblem, readHtpasswdFile } from '../auth/htpasswd.js';
import type { HtpasswdUsers } from '../auth/types.js';
import { invalidConfiguration, parseConfig } from '../config/load.js';
import type { Config, ConfigFiles } from '../config/types.js';
import { openAutoCertificate, type GeneratedCertificate } from '../tls/auto.js';
import { openCertificateFiles } from '../tls/file-source.js';
import { loadClientCa, unconstrainedCaWarning } from '../tls/load.js';
import type { CertificateSource } from '../tls/source.js';

/** What the gateway starts from: the configuration and what its files held at start-up. */
export interface GatewaySetup {
  readonly config: Config;
  /** Users as read at start-up. */
  readonly users: HtpasswdUsers;
  /** The access file and its policy as read at start-up; null: every user may do everything. */
  readonly access: { readonly file: string; readonly policy: AccessPolicy } | null;
  readonly tls: {
    /** Where the listener's key and chain come from. */
    readonly certificates: CertificateSource;
    /** PEM CA that client certificates must be signed by (mutual TLS), or null. */
    readonly clientCa: string | null;
    /** Set when this start made the certificate itself (no certificate at the default paths). */
    readonly generated: GeneratedCertificate | null;
    /** One-line warnings about the certificate in use, for the primary process to log at start. */
    readonly warnings: readonly string[];
  };
}

/** Flags and environment, then the files they name; throws CONFIG_INVALID (exit 2) with every problem. */
export async function loadGatewaySetup(argv: string[], env: Readonly<Record<string, string | undefined>>, now = new Date()): Promise<GatewaySetup> {
  const parsed = parseConfig(argv, env);
  const problems = [...parsed.problems];
  const files = await readConfigFiles(parsed.files, now);
  problems.push(...files.problems);
  if (problems.length > 0 || parsed.config === null || files.setup === null) throw invalidConfiguration(problems);
  return Object.freeze({ config: parsed.config, ...files.setup });
}

/** Reads every file the configuration names, in a fixed order, gathering their problems. */
async function readConfigFiles(files: ConfigFiles, now: Date): Promise<{ setup: Omit<GatewaySetup, 'config'> | null; problems: string[] }> {
  const problems: string[] = [];

  const certificates = files.autoCertificate === null ? { ...(await openCertificateFiles(files, now)), generated: null } : await openAutoCertificate(files, files.autoCertificate, now);
  problems.push(...certificates.problems);
  const clientCa = files.clientCa === null ? null : await loadClientCa(files.clientCa.file, files.clientCa.source);
  problems.push(...(clientCa?.problems ?? []));

  const htpasswd = await readHtpasswdFile(files.htpasswd.file);
  problems.push(...htpasswd.problems.map((p) => `${files.htpasswd.source}: ${formatHtpasswdProblem(p)}`));
  const access = files.access === null ? null : await readAccessFile(files.access.file);
  problems.push(...(access?.problems ?? []).map((p) => `${files.access!.source}: ${formatAccessProblem(p)}`));

  const source = certificates.source;
  if (problems.length > 0 || source === null) return { setup: null, problems };
  return {
    setup: {
      users: htpasswd.users,
      access: files.access !== null && access?.policy ? Object.freeze({ file: files.access.file, policy: access.policy }) : null,
      tls: Object.freeze({
        certificates: source,
        clientCa: clientCa?.pem ?? null,
        generated: certificates.generated,
        warnings: Object.freeze([unconstrainedCaWarning(source.current().cert, files.cert.file)].filter((w): w is string => w !== null)),
      }),
    },
    problems,
  };
}
