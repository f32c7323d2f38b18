// Reading and checking the certificate and key (and the CA of client certificates), every problem
// at once, each naming its option; and what start-up says about the files it serves.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DEFAULT_CA_NAME } from './certificates.js';
import { readNameConstraints } from './name-constraints.js';

export interface TlsFilesInput {
  readonly certFile: string;
  readonly certSource: string;
  readonly keyFile: string;
  readonly keySource: string;
}

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

async function readText(file: string, source: string, what: string, problems: string[]): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this user' : `cannot be read (${code ?? String(err)})`;
    problems.push(`${source}: ${what} file ${file} ${why}; give the path of a PEM ${what}`);
    return null;
  }
}

function parseLeaf(pem: string, file: string, source: string, problems: string[]): X509Certificate | null {
  const blocks = pem.match(PEM_CERT);
  if (!blocks) {
    problems.push(`${source}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return null;
  }
  try {
    return new X509Certificate(blocks[0]);
  } catch {
    problems.push(`${source}: the first certificate in ${file} cannot be parsed; is it PEM?`);
    return null;
  }
}

function parseKey(pem: string, file: string, source: string, problems: string[]): KeyObject | null {
  try {
    return createPrivateKey(pem);
  } catch {
    problems.push(`${source}: ${file} is not an unencrypted PEM private key`);
    return null;
  }
}

function checkValidity(leaf: X509Certificate, file: string, source: string, now: Date, problems: string[]): void {
  const notAfter = new Date(leaf.validTo);
  const notBefore = new Date(leaf.validFrom);
  if (notAfter <= now) problems.push(`${source}: the certificate in ${file} expired on ${notAfter.toISOString()}; renew it`);
  else if (notBefore > now) problems.push(`${source}: the certificate in ${file} is not valid before ${notBefore.toISOString()}; check the clock or the certificate`);
}

/** Read both files and collect every problem found, rather than stopping at the first. */
export async function loadTlsFiles(input: TlsFilesInput, now = new Date()): Promise<{ files: TlsFiles | null; problems: string[] }> {
  // Each read reports into its own list, so the problems come in one order (certificate, then
  // key) whichever read finishes first.
  const certProblems: string[] = [];
  const keyProblems: string[] = [];
  const [cert, key] = await Promise.all([
    readText(input.certFile, input.certSource, 'certificate', certProblems),
    readText(input.keyFile, input.keySource, 'private key', keyProblems),
  ]);
  const problems = [...certProblems, ...keyProblems];
  const leaf = cert === null ? null : parseLeaf(cert, input.certFile, input.certSource, problems);
  const keyObject = key === null ? null : parseKey(key, input.keyFile, input.keySource, problems);
  if (leaf) checkValidity(leaf, input.certFile, input.certSource, now, problems);
  if (leaf && keyObject && !leaf.checkPrivateKey(keyObject)) {
    problems.push(
      `${input.keySource}: the key in ${input.keyFile} does not belong to the certificate in ${input.certFile}; give the matching pair`,
    );
  }
  return { files: problems.length === 0 && cert !== null && key !== null ? { cert, key } : null, problems };
}

/** The CA file for client certificates: at least one PEM certificate, each a CA. */
export async function loadClientCa(file: string, source: string): Promise<{ pem: string | null; problems: string[] }> {
  const problems: string[] = [];
  const pem = await readText(file, source, 'CA certificate', problems);
  if (pem === null) return { pem, problems };
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) problems.push(`${source}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const block of blocks) {
    try {
      if (!new X509Certificate(block).ca) problems.push(`${source}: ${file} holds a certificate that is not a CA; give the CA that signs the client certificates`);
    } catch {
      problems.push(`${source}: a certificate in ${file} cannot be parsed; is it PEM?`);
    }
  }
  return { pem: problems.length === 0 ? pem : null, problems };
}

/**
 * The permission bits of a private key file when group or others may read or write it (say
 * '644'), else null. Checked at start: a key others can read is as good as published.
 */
export function exposedKeyMode(file: string): string | null {
  try {
    const mode = statSync(file).mode & 0o777;
    return (mode & 0o077) === 0 ? null : mode.toString(8).padStart(3, '0');
  } catch {
    return null; // unreadable files are reported by loading
  }
}

/**
 * One line to log at start when the certificate was signed by a CA this gateway made before its
 * CAs carried name constraints (found in the chain it serves, so ca.crt may be anywhere): such a
 * CA's key can sign for any site. Null for a limited CA, or one the gateway did not make.
 */
export function unconstrainedCaWarning(chainPem: string, certFile: string): string | null {
  const [leafPem, ...rest] = chainPem.match(PEM_CERT) ?? [];
  if (leafPem === undefined) return null;
  try {
    const leaf = new X509Certificate(leafPem);
    for (const pem of rest) {
      const ca = new X509Certificate(pem);
      const madeHere = ca.ca && ca.subject === `CN=${DEFAULT_CA_NAME}` && ca.issuer === ca.subject && leaf.checkIssued(ca);
      if (!madeHere) continue;
      if (readNameConstraints(pem) !== null) return null;
      const dir = dirname(certFile);
      return `the CA that signed ${certFile} has no name constraints, so whoever holds its key can sign for any site to the machines that trust it; make one limited to this registry's names (registry-gateway certs init --force --out ${dir} --host NAME --ip ADDR [--ca-domain SUFFIX], or empty ${dir} and restart), then trust the new ca.crt on every client`;
    }
  } catch {
    return null; // an unreadable chain is reported by loading, or served as given
  }
  return null;
}
