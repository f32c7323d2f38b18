// What every bench command does before and around its measurements: the Debian tools it drives, a
// scratch folder removed on exit or Ctrl-C with every service in it stopped, the certificate and
// htpasswd file the fronts share, and a description of the machine for the results file.
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from '../test/helpers/pki.js';
import { writeHtpasswd, type HtpasswdUser } from '../test/helpers/htpasswd.js';
import { exec, execOk, killEverything, type FrontFiles, type Service } from './services.js';

export type Log = (msg: string) => void;

/** A logger prefixing each line with `[name HH:MM:SS]`, on stderr. */
export function logger(name: string): Log {
  return (msg) => console.error(`[${name} ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

/** Installs the Debian packages of missing tools (`tool -> package`) when root; otherwise says which. */
export async function ensureTools(tools: Readonly<Record<string, string>>, log: Log): Promise<void> {
  const onPath = async (tool: string) => (await exec('sh', ['-c', `command -v ${tool}`], 5_000)).code === 0;
  const missing: string[] = [];
  for (const [tool, pkg] of Object.entries(tools)) if (!(await onPath(tool))) missing.push(pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`the benchmark needs these Debian packages: ${missing.join(' ')}. Install them (as root: apt-get install ${missing.join(' ')}) and run it again.`);
  }
  log(`installing ${missing.join(' ')}`);
  await execOk('apt-get', ['update', '-qq'], 300_000);
  await execOk('apt-get', ['install', '-y', '-qq', ...missing], 600_000);
}

export interface Scratch {
  readonly dir: string;
  /** Services stopped, last started first, by cleanup(). */
  readonly started: Service[];
  /** Stops the services and removes the folder; safe to call more than once. */
  cleanup(): Promise<void>;
}

/**
 * A temporary folder (readable by others: nginx's workers run as nobody when started by root)
 * that is removed, and whose services are stopped, on cleanup(), exit, SIGINT or SIGTERM.
 */
export async function scratch(prefix: string, log: Log): Promise<Scratch> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const started: Service[] = [];
  let cleaned: Promise<void> | null = null;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    })());
  process.on('exit', () => {
    killEverything();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping everything`);
      void cleanup().finally(() => process.exit(code));
    });
  }
  return { dir, started, cleanup };
}

/** A certificate for 127.0.0.1/localhost and an htpasswd file with `users`, written by Apache's htpasswd. */
export async function frontFiles(dir: string, users: readonly HtpasswdUser[]): Promise<FrontFiles> {
  const pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
  const htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, users);
  chmodSync(htpasswd, 0o644);
  return { cert: pki.serverCert, key: pki.serverKey, caFile: pki.caCert, htpasswd };
}

/** First line of a command's output (stdout or stderr), for version strings. */
export async function firstLine(file: string, args: readonly string[]): Promise<string> {
  const r = await exec(file, args, 10_000);
  return (r.stdout + r.stderr).trim().split('\n')[0]!;
}

/** `2 cores (AMD EPYC), 24 GiB` and `v20.x (OpenSSL 3.x)`. */
export function machineAndNode(): { machine: string; node: string } {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  return {
    machine: `${cpus().length} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: `${process.version} (OpenSSL ${process.versions.openssl})`,
  };
}
