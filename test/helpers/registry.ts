// Runs the real distribution registry (Debian's docker-registry) on a free loopback port.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, requireTool } from './tools.js';
import { sleep } from './wait.js';

export interface RegistryOptions {
  /** Sets `http.host`: the registry then builds absolute Location URLs on this origin. */
  httpHost?: string;
  /** `storage.delete.enabled`; true unless set to false. */
  deleteEnabled?: boolean;
  /** Parent of the temporary folder; the system temp dir by default. */
  parentDir?: string;
  /** Turns on the registry's own htpasswd auth (realm "test") with this file, which must exist. */
  htpasswdFile?: string;
  /**
   * Turns on the registry's own token auth instead: it then challenges `Bearer realm="REALM"`, and
   * trusts tokens signed under the certificates of `rootCertBundle` (a PEM file, which must exist).
   */
  tokenAuth?: { realm: string; rootCertBundle: string };
}

export interface TestRegistry {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Temporary folder holding config.yml, registry.log and storage/. */
  readonly dir: string;
  readonly storageDir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** True while the registry process runs. */
  readonly running: boolean;
  /** Everything the registry logged so far (its stdout and stderr). */
  log(): string;
  /** Stops the process, keeping port, storage and log: `start()` brings it back. */
  halt(): Promise<void>;
  /** Starts it again on the same port and storage; resolves once `GET /v2/` answers. */
  start(): Promise<void>;
  /** halt() then start(). */
  restart(): Promise<void>;
  /** Suspends the process (SIGSTOP): connections are accepted by the kernel, never answered. */
  freeze(): void;
  /** Resumes a frozen process (SIGCONT). */
  thaw(): void;
  /** Stops the process and removes the temporary folder. Idempotent. */
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 15_000;

/** Starts a registry with filesystem storage in a new temporary folder. */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const binary = requireTool('docker-registry');
  const dir = await mkdtemp(join(options.parentDir ?? tmpdir(), 'rgw-registry-'));
  const storageDir = join(dir, 'storage');
  const configFile = join(dir, 'config.yml');
  const logFile = join(dir, 'registry.log');
  await mkdir(storageDir);
  const port = await freePort();
  await writeFile(configFile, registryConfig({ port, storageDir, ...options }));

  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let removed = false;

  const readLog = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  const start = async (): Promise<void> => {
    if (removed) throw new Error('this registry was stopped for good; start a new one');
    if (child !== null) return;
    const fd = openSync(logFile, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(binary, ['serve', configFile], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    child = proc;
    let exitInfo: string | null = null;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        exitInfo = `exit code ${code ?? 'none'}, signal ${signal ?? 'none'}`;
        if (child === proc) child = null;
        resolve();
      });
      proc.once('error', (err) => {
        exitInfo = `spawn error ${err.message}`;
        if (child === proc) child = null;
        resolve();
      });
    });
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      if (exitInfo !== null) {
        throw new Error(`docker-registry stopped while starting (${exitInfo}); its log:\n${readLog()}`);
      }
      // With its own auth on, the registry is ready when it asks for credentials.
      if ((await probe(`${url}/v2/`)) === (options.htpasswdFile === undefined && options.tokenAuth === undefined ? 200 : 401)) return;
      if (Date.now() > deadline) {
        await halt();
        throw new Error(`docker-registry did not answer GET ${url}/v2/ within ${STARTUP_TIMEOUT_MS} ms; its log:\n${readLog()}`);
      }
      await sleep(50);
    }
  };

  const halt = async (): Promise<void> => {
    const proc = child;
    if (proc === null) return;
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  const registry: TestRegistry = {
    url,
    port,
    dir,
    storageDir,
    configFile,
    logFile,
    get running() {
      return child !== null;
    },
    log: readLog,
    halt,
    start,
    async restart() {
      await halt();
      await start();
    },
    freeze() {
      if (child === null) throw new Error('the registry is not running');
      child.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    async stop() {
      if (removed) return;
      await halt();
      removed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await start();
  } catch (err) {
    removed = true;
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return registry;
}

function registryConfig(o: { port: number; storageDir: string } & Omit<RegistryOptions, 'parentDir'>): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(o.storageDir)}`,
    '  delete:',
    `    enabled: ${o.deleteEnabled === false ? 'false' : 'true'}`,
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${o.port}`,
    // A fixed secret keeps upload state valid across a restart of the same registry.
    '  secret: registry-gateway-test-secret',
  ];
  if (o.httpHost !== undefined) lines.push(`  host: ${JSON.stringify(o.httpHost)}`);
  if (o.htpasswdFile !== undefined) lines.push('auth:', '  htpasswd:', '    realm: test', `    path: ${JSON.stringify(o.htpasswdFile)}`);
  else if (o.tokenAuth !== undefined) {
    lines.push('auth:', '  token:', `    realm: ${JSON.stringify(o.tokenAuth.realm)}`, '    service: registry', '    issuer: test', `    rootcertbundle: ${JSON.stringify(o.tokenAuth.rootCertBundle)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Status code of a GET, or null when nothing answered. */
function probe(target: string): Promise<number | null> {
  return new Promise((resolve) => {
    const req = request(target, { method: 'GET', timeout: 1_000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? null);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(null));
    req.end();
  });
}
