// What the gateway keeps of an ACME CA, under the certs folder: per directory (its host and path,
// so Let's Encrypt's staging and production accounts never mix), the account key and URL, and the
// certificate with its key. Kept so that a restart never asks the CA again (rate limits), and so
// that --workers processes take the certificate the primary got. Folders 0700, keys 0600; every
// write replaces whole files (a crash never leaves half a key under the real name).

import { X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readOptionalFile } from '../config/read-optional.js';
import { writeAll } from './cert-files.js';
import type { CertificatePair } from './source.js';

const DIR_MODE = 0o700;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;

export interface AcmeFiles {
  readonly dir: string;
  readonly accountKey: string;
  readonly account: string;
  readonly cert: string;
  readonly key: string;
}

export interface StoredCertificate extends CertificatePair {
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DNS names of the leaf. */
  readonly names: readonly string[];
  readonly issuer: string;
}

/** The files of one directory URL under `folder`. */
export function acmeFiles(folder: string, directoryUrl: string): AcmeFiles {
  const url = new URL(directoryUrl);
  const dir = join(folder, `${url.host}${url.pathname}`.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/_+$/, ''));
  return { dir, accountKey: join(dir, 'account.key'), account: join(dir, 'account.json'), cert: join(dir, 'certificate.crt'), key: join(dir, 'certificate.key') };
}

export async function readAccount(files: AcmeFiles): Promise<{ key: string; url: string | null } | null> {
  const key = await readOptionalFile(files.accountKey);
  if (key === null) return null;
  const account = await readOptionalFile(files.account);
  const url = account === null ? null : ((JSON.parse(account) as { url?: unknown }).url ?? null);
  return { key, url: typeof url === 'string' ? url : null };
}

export async function writeAccount(files: AcmeFiles, key: string, url: string): Promise<void> {
  await mkdir(files.dir, { recursive: true, mode: DIR_MODE });
  await writeAll([
    { file: files.accountKey, text: key, mode: KEY_MODE },
    { file: files.account, text: `${JSON.stringify({ url }, null, 2)}\n`, mode: CERT_MODE },
  ]);
}

/** The stored certificate, or null when there is none or it cannot be read as one. */
export async function readStoredCertificate(files: AcmeFiles): Promise<StoredCertificate | null> {
  const [cert, key] = await Promise.all([readOptionalFile(files.cert), readOptionalFile(files.key)]);
  if (cert === null || key === null) return null;
  try {
    return describeStored({ cert, key });
  } catch {
    return null;
  }
}

export function describeStored(pair: CertificatePair): StoredCertificate {
  const leaf = new X509Certificate(pair.cert);
  const names = (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4).toLowerCase());
  return { ...pair, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), names, issuer: leaf.issuer.split('\n').join(', ') };
}

export async function writeCertificate(files: AcmeFiles, pair: CertificatePair): Promise<void> {
  await mkdir(files.dir, { recursive: true, mode: DIR_MODE });
  // The key first: a reader that sees the new certificate finds its key already there.
  await writeAll([
    { file: files.key, text: pair.key, mode: KEY_MODE },
    { file: files.cert, text: pair.cert, mode: CERT_MODE },
  ]);
}

/** When a certificate is due for renewal: two thirds into its lifetime. */
export function renewalTime(stored: { readonly notBefore: Date; readonly notAfter: Date }): Date {
  const start = stored.notBefore.getTime();
  return new Date(start + ((stored.notAfter.getTime() - start) * 2) / 3);
}

/** Whether a stored certificate can serve these names now. */
export function serves(stored: StoredCertificate, domains: readonly string[], now: Date): boolean {
  return stored.notAfter > now && domains.every((d) => stored.names.includes(d));
}
