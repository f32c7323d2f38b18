// Auto-TLS, the certificate source of a gateway left at its default certificate paths: a first
// start with no certificate there makes a private CA and a certificate, as `certs init` would, so
// `serve` (and `docker compose up`) work on a fresh checkout; from then on the files are served
// and followed like any others (file-source.ts). Paths given explicitly are never replaced: a
// missing file there is an error, reported as such.

import { access } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { AutoCertificateSettings, FileOption } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { trustInstructions, trustedNames, writeCertificateSet } from './cert-files.js';
import { normalizeServerNames, urlHostName } from './certificates.js';
import { openCertificateFiles, type OpenedCertificates } from './file-source.js';
import { checkServerCertificate, type CertificateCheck, type CertificateCheckInput } from './renew.js';

export interface GeneratedCertificate {
  readonly caFile: string;
  readonly hosts: readonly string[];
  readonly ips: readonly string[];
  /** How to make Docker, containerd and the system trust the CA. */
  readonly instructions: string;
}

export interface AutoCertificateInput extends Omit<AutoCertificateSettings, 'caDomains'> {
  readonly certFile: string;
  readonly keyFile: string;
  /** `--ca-domain` suffixes (checked) the new CA may sign for besides the certificate's names. */
  readonly caDomains?: readonly string[];
}

function isUsableHostName(name: string): boolean {
  try {
    normalizeServerNames([name], []);
    return true;
  } catch {
    return false;
  }
}

/**
 * Names for the certificate: the public host, this machine, loopback, and whatever was asked for.
 * The machine's own name is left out when it cannot be a DNS name (`my_box`); a bad `--tls-san`
 * is kept, so that making the certificate fails and says which.
 */
export function autoCertificateNames(publicUrl: URL | null, extraSans: readonly string[], machine = hostname()): { hosts: string[]; ips: string[] } {
  const machineName = isUsableHostName(machine.toLowerCase()) ? machine : undefined;
  const entries = [publicUrl === null ? undefined : urlHostName(publicUrl), machineName, 'localhost', '127.0.0.1', '::1', ...extraSans];
  const unique = [...new Set(entries.filter((e): e is string => e !== undefined && e.trim() !== '').map((e) => e.trim().toLowerCase()))];
  return { hosts: unique.filter((e) => isIP(e) === 0), ips: unique.filter((e) => isIP(e) !== 0) };
}

/**
 * A CA without a server certificate: clients may trust it already, so a new CA (which they would
 * have to trust anew) is not made behind their back; the way to a certificate from it is shown.
 */
async function refuseLoneCa(dir: string, caFile: string): Promise<void> {
  const caKey = join(dir, 'ca.key');
  const found = [(await exists(caFile)) ? caFile : null, (await exists(caKey)) ? caKey : null].filter((f) => f !== null);
  if (found.length === 0) return;
  throw new GatewayError(
    'CERTS_EXIST',
    `${found.join(' and ')} exist${found.length === 1 ? 's' : ''} but no server certificate: issue one from that CA with registry-gateway certs server --out ${dir} --host NAME --ip ADDR (clients that trust it need no change), or move ${dir}/ca.* away to have a new CA made on the next start`,
  );
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Makes the CA and server certificate when neither default file exists; null when there was nothing to do. */
export async function makeDefaultCertificateIfMissing(input: AutoCertificateInput): Promise<GeneratedCertificate | null> {
  const dir = dirname(input.certFile);
  const laidOutAsInit = dirname(input.keyFile) === dir && basename(input.certFile) === 'server.crt' && basename(input.keyFile) === 'server.key';
  if (!laidOutAsInit || (await exists(input.certFile)) || (await exists(input.keyFile))) return null;
  const caFile = join(dir, 'ca.crt');
  await refuseLoneCa(dir, caFile);
  const { hosts, ips } = autoCertificateNames(input.publicUrl, input.extraSans);
  await writeCertificateSet(dir, { hosts, ips, caDomains: input.caDomains ?? [] });
  return { caFile, hosts, ips, instructions: trustInstructions(caFile, trustedNames(input.publicUrl, [...hosts, ...ips]), input.port) };
}

/**
 * The certificate files at the default paths, made first when neither exists: the source and
 * what was made (null when it was there already), or every problem found.
 */
export async function openAutoCertificate(
  files: { readonly cert: FileOption; readonly key: FileOption },
  settings: AutoCertificateSettings,
  now = new Date(),
  options: { readonly make?: boolean; readonly renew?: CertificateCheckInput | null } = {},
): Promise<OpenedCertificates & { readonly generated: GeneratedCertificate | null; readonly check: CertificateCheck | null; readonly warnings: readonly string[] }> {
  const problems: string[] = [];
  const warnings: string[] = [];
  let generated: GeneratedCertificate | null = null;
  let check: CertificateCheck | null = null;
  if (options.make === false) {
    // Another problem stops this start: nothing is made (nor a folder left behind), and files
    // that are not there yet are no problem, since the next good start makes them.
    if (!(await exists(files.cert.file)) && !(await exists(files.key.file))) return { source: null, generated, check, warnings, problems };
  } else {
    try {
      generated = await makeDefaultCertificateIfMissing({ ...settings, certFile: files.cert.file, keyFile: files.key.file });
    } catch (err) {
      problems.push(`${files.cert.source}: no certificate at ${files.cert.file}, and making one failed: ${(err as Error).message}`);
    }
  }
  // Before the files are opened, so that a certificate re-issued now is the one served.
  if (generated === null && problems.length === 0 && options.renew) {
    try {
      check = await checkServerCertificate(options.renew, now);
    } catch (err) {
      warnings.push(`${files.cert.file} was due to be re-issued from its CA, which failed (${(err as Error).message}); it is served as it is`);
    }
  }
  const opened = await openCertificateFiles(files, now);
  return { source: opened.source, generated, check, warnings, problems: [...problems, ...opened.problems] };
}
