// The file side of `registry-gateway certs`: the CA, server and client certificates on disk, private
// keys readable by their owner only, never a half-written file, and how clients come to trust the CA.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isIP } from 'node:net';
import { GatewayError } from '../errors.js';
import { CA_DAYS, createCa, createClientCertificate, createServerCertificate, normalizeServerNames, urlHostName, type KeyAndCert } from './certificates.js';
import { constraintsFor, describeConstraints, readNameConstraints } from './name-constraints.js';

export interface CertificateSetOptions {
  hosts: readonly string[];
  ips: readonly string[];
  /** Validity of the server certificate; the CA lasts at least 10 years, and never less than it. */
  days?: number;
  force?: boolean;
  /** DNS suffixes the CA may also sign for (already checked, see parseCaDomains). */
  caDomains?: readonly string[];
}

export interface CertificateSetFiles {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
const DIR_MODE = 0o700;

/** Writes ca.crt, ca.key, server.crt (leaf then CA) and server.key into dir. */
export async function writeCertificateSet(dir: string, options: CertificateSetOptions): Promise<CertificateSetFiles> {
  // Bad names fail before existing files are looked at or any key is made.
  const names = normalizeServerNames(options.hosts, options.ips);
  const files: CertificateSetFiles = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  };
  if (options.force !== true) await refuseExisting(Object.values(files));
  // The CA may sign for these names (and --ca-domain suffixes) only: its key lies beside the
  // server's, and must not be a key to every other site for the machines that trust it.
  const ca = createCa({ days: Math.max(CA_DAYS, options.days ?? 0), constraints: constraintsFor(names, options.caDomains ?? []) });
  const server = createServerCertificate(ca, { hosts: options.hosts, ips: options.ips, days: options.days });
  const made = await ensureDir(dir);
  try {
    await writeAll([
      { file: files.caKey, text: ca.key, mode: KEY_MODE },
      { file: files.caCert, text: ca.cert, mode: CERT_MODE },
      { file: files.serverKey, text: server.key, mode: KEY_MODE },
      { file: files.serverCert, text: server.cert, mode: CERT_MODE },
    ]);
  } catch (err) {
    // A folder made for these files and left empty would only puzzle the next start.
    if (made) await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return files;
}

/**
 * Issues a new server.crt and server.key in dir from the CA already there (dir/ca.crt + ca.key),
 * so clients that trust it need no change: for new names, or a certificate about to expire.
 * Names outside the CA's name constraints are refused (CA_UNUSABLE) before anything is written.
 */
export async function writeServerCertificate(
  dir: string,
  options: { hosts: readonly string[]; ips: readonly string[]; days?: number; force?: boolean },
): Promise<{ cert: string; key: string }> {
  normalizeServerNames(options.hosts, options.ips);
  const ca = await readCa(dir);
  const files = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
  if (options.force !== true) await refuseExisting([files.cert, files.key]);
  const server = createServerCertificate(ca, { hosts: options.hosts, ips: options.ips, days: options.days });
  await writeAll([
    { file: files.key, text: server.key, mode: KEY_MODE },
    { file: files.cert, text: server.cert, mode: CERT_MODE },
  ]);
  return files;
}

/** Issues NAME.cert (leaf then CA) and NAME.key in dir, signed by dir/ca.crt + dir/ca.key. */
export async function writeClientCertificate(
  dir: string,
  name: string,
  options: { days?: number; force?: boolean } = {},
): Promise<{ cert: string; key: string }> {
  checkClientName(name);
  const ca = await readCa(dir);
  const files = { cert: join(dir, `${name}.cert`), key: join(dir, `${name}.key`) };
  if (options.force !== true) await refuseExisting([files.cert, files.key]);
  const client = createClientCertificate(ca, { name, days: options.days });
  await writeAll([
    { file: files.key, text: client.key, mode: KEY_MODE },
    { file: files.cert, text: client.cert, mode: CERT_MODE },
  ]);
  return files;
}

/**
 * Copy-pasteable commands that make Docker, podman/skopeo, containerd and the system trust the CA
 * for each name: the per-registry folders first, since they trust the CA for that registry only.
 */
export function trustInstructions(caFile: string, names: string[], port: number): string {
  const addresses = names.map((name) => registryAddress(name, port));
  const ca = shellWord(caFile);
  const install = (root: string) => addresses.map((a) => `  sudo install -D -m 644 ${ca} ${shellWord(`${root}/${a}/ca.crt`)}`);
  const lines = [
    `Trust the CA (${caFile}) on every machine that pushes or pulls. On another machine, copy ${basename(caFile)} there and`,
    `use its path there in place of ${caFile}.`,
    '',
    'Preferred: the per-registry folders, which trust the CA for this registry address only.',
    'Docker (reads certs.d on every connection: no daemon restart needed):',
    ...install('/etc/docker/certs.d'),
    '',
    'podman, skopeo, buildah, CRI-O:',
    ...install('/etc/containers/certs.d'),
    '',
    'Rootless podman, skopeo and buildah also read ~/.config/containers/certs.d/ADDRESS/ca.crt, no sudo needed.',
    '',
    'containerd (ctr --hosts-dir, nerdctl, and the CRI plugin when config_path is /etc/containerd/certs.d):',
    ...install('/etc/containerd/certs.d'),
    '',
    `Docker Desktop on macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${basename(caFile)}`,
    '  (in the folder you copied it to), then restart Docker Desktop.',
    `Docker Desktop on Windows, in PowerShell as administrator: Import-Certificate -FilePath ${basename(caFile)} -CertStoreLocation Cert:\\LocalMachine\\Root`,
    '  (in the folder you copied it to), then restart Docker Desktop.',
    '',
    'Only if other programs must reach the registry too: the system store. Then every TLS client on the machine',
    `(curl, browsers, package managers; dockerd after a restart) trusts certificates this CA signs, ${constraintNote(caFile)}`,
    `  Debian, Ubuntu:  sudo install -m 644 ${ca} /usr/local/share/ca-certificates/registry-gateway.crt && sudo update-ca-certificates`,
    `  RHEL, Fedora:    sudo install -m 644 ${ca} /etc/pki/ca-trust/source/anchors/registry-gateway.crt && sudo update-ca-trust`,
    '',
    'Check it:',
    ...addresses.map((a) => `  curl --cacert ${ca} ${shellWord(`https://${a}/healthz`)}`),
    '',
    `The CA key ${join(dirname(caFile), 'ca.key')} signs certificates; the gateway serves without it. While it is here, the gateway`,
    `re-issues its certificate by itself (a name added, 30 days before expiry). Safer: keep it offline, and bring it back`,
    `only to issue certificates (registry-gateway certs renew, certs server, certs client).`,
  ];
  if (names.some(isLoopback)) {
    lines.push('', 'Docker does not verify certificates of registries on 127.0.0.0/8 (localhost included): it treats them as insecure.');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The names the trust instructions give, for certs.d/NAME:PORT: the --public-url host alone when
 * there is one (inside a container, the machine's own name is the container's id, which no client
 * uses), else every name of the certificate.
 */
export function trustedNames(publicUrl: URL | null, certificateNames: readonly string[]): string[] {
  return publicUrl === null ? [...certificateNames] : [urlHostName(publicUrl).toLowerCase()];
}

/** What the CA's name constraints limit that trust to, read back from the CA file as written. */
function constraintNote(caFile: string): string {
  let limits: string | null = null;
  try {
    const constraints = readNameConstraints(readFileSync(caFile, 'utf8'));
    limits = constraints === null ? null : describeConstraints(constraints);
  } catch {
    limits = null;
  }
  return limits === null ? 'for any site:' : `limited by its name constraints to ${limits}:`;
}

/** What clients write before the image path: no port for 443, IPv6 in brackets. */
export function registryAddress(name: string, port: number): string {
  const host = isIP(name) === 6 ? `[${name}]` : name;
  return port === 443 ? host : `${host}:${port}`;
}

function isLoopback(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost') || (isIP(name) === 4 && name.startsWith('127.'));
}

/** Quoted for a POSIX shell when it holds anything beyond a plain path (`[::1]` would be a glob). */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The name becomes a file name and a subject CN; ca and server would clobber the CA's and server's key. */
function checkClientName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new GatewayError(
      'CERT_CLIENT_NAME_INVALID',
      `"${name}" cannot name a client certificate: use 1 to 64 letters, digits, dots, hyphens or underscores, starting with a letter or digit`,
    );
  }
  if (name === 'ca' || name === 'server') {
    throw new GatewayError('CERT_CLIENT_NAME_INVALID', `"${name}" is taken by the ${name} certificate's own files; choose another name`);
  }
}

async function readCa(dir: string): Promise<KeyAndCert> {
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  const [cert, key] = await Promise.all([readIfPresent(certFile), readIfPresent(keyFile)]);
  if (cert !== null && key === null) {
    throw new GatewayError(
      'CA_MISSING',
      `${keyFile} is missing (kept offline?): only the CA key can sign. Put it back (mode 0600) to issue this certificate, then move it away again; registry-gateway certs init --force would instead make a new CA that every client must trust anew`,
    );
  }
  if (cert === null || key === null) {
    const missing = [cert === null ? certFile : null, key === null ? keyFile : null].filter((f) => f !== null).join(' and ');
    throw new GatewayError('CA_MISSING', `no CA in ${dir}: ${missing} missing; run registry-gateway certs init first (with --out ${dir})`);
  }
  return { cert, key };
}

async function readIfPresent(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new GatewayError('CA_MISSING', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
}

async function refuseExisting(files: string[]): Promise<void> {
  const found = await Promise.all(files.map(async (file) => ((await existsAt(file)) ? file : null)));
  const existing = found.filter((f): f is string => f !== null);
  if (existing.length === 0) return;
  throw new GatewayError(
    'CERTS_EXIST',
    `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; nothing was written. Run again with --force to replace ${existing.length === 1 ? 'it' : 'them'}`,
  );
}

/** lstat, so a dangling symlink also counts: writing through it would land somewhere unexpected. */
async function existsAt(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Makes dir (0700) when missing; whether it was made here. */
async function ensureDir(dir: string): Promise<boolean> {
  const created = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  // The umask applies to mkdir's mode; set it exactly on the folder we made (an existing one is left alone).
  if (created !== undefined) await chmod(dir, DIR_MODE);
  return created !== undefined;
}

export interface PendingFile {
  file: string;
  text: string;
  mode: number;
}

/**
 * Every file is written in full to a temporary name beside its target, then all are renamed into
 * place, so a crash or a full disk never leaves a truncated key or certificate under the real name.
 */
export async function writeAll(pending: PendingFile[]): Promise<void> {
  const temps: string[] = [];
  try {
    for (const p of pending) {
      const temp = join(dirname(p.file), `.${basename(p.file)}.${randomBytes(6).toString('hex')}.tmp`);
      temps.push(temp);
      await writeTemp(temp, p);
    }
    for (const [i, p] of pending.entries()) await rename(temps[i]!, p.file);
  } finally {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
  }
}

async function writeTemp(temp: string, { text, mode }: PendingFile): Promise<void> {
  // Created with the final mode so a key is never readable by others, even for a moment.
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode); // the umask narrowed the mode open() used; set it exactly
    await handle.sync();
  } finally {
    await handle.close();
  }
}
