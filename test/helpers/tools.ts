// Small helpers shared by the test helpers: finding the real tools the tests drive, free ports.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

/** The Debian package that ships each tool the tests run. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  podman: 'podman',
  ctr: 'containerd',
  containerd: 'containerd',
  htpasswd: 'apache2-utils',
  openssl: 'openssl',
  docker: 'docker.io',
  dockerd: 'docker.io',
  tar: 'tar',
  gzip: 'gzip',
  unshare: 'util-linux',
  script: 'bsdutils',
  testssl: 'testssl.sh',
  wrk: 'wrk',
  pebble: 'pebble',
  'pebble-challtestsrv': 'pebble',
  chromium: 'chromium',
};

/**
 * Absolute path of an executable found on PATH. A missing tool is an error naming the Debian
 * package to install: tests that need it fail loudly instead of being skipped.
 */
export function requireTool(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  const pkg = TOOL_PACKAGES[name];
  const hint = pkg === undefined ? '' : ` Install it with: apt-get install -y ${pkg}`;
  throw new Error(`The test tool "${name}" was not found on PATH.${hint}`);
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a probe socket'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Runs a command (no shell) and collects its output. Never rejects on a non-zero exit. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        env: options.env ?? process.env,
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof (error as NodeJS.ErrnoException).code === 'string') {
          // spawn failure (ENOENT, ...), not an exit status
          reject(error);
          return;
        }
        resolve({
          code: child.exitCode,
          signal: child.signalCode,
          stdout,
          stderr,
        });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** Like run(), but a non-zero exit is an error carrying the command's output. */
export async function runOk(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(file, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} exited with ${result.code ?? result.signal}\n` +
        `--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  }
  return result;
}
