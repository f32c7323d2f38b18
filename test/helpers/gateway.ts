// The one in-process gateway of the tests: temp folder, PKI, htpasswd, a real registry (or any
// upstream URL given, such as a stand-in from upstreams.ts), and the gateway started in this process.
// (The gateway as its own process: gateway-process.ts.)
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, LogLevel } from '../../src/config/types.js';
import { startGateway } from '../../src/server/gateway.js';
import { loadGatewaySetup } from '../../src/server/resources.js';
import { createLogger } from '../../src/server/logger.js';
import { writeHtpasswd, type HtpasswdUser } from './htpasswd.js';
import { makeTestPki, type TestPki } from './pki.js';
import { startRegistry, type RegistryOptions, type TestRegistry } from './registry.js';

export type RunningGateway = Awaited<ReturnType<typeof startGateway>>;

/** `--token-service` of a stack with `tokenAuth`. */
export const TOKEN_SERVICE = 'gateway.test';

/** The user every stack has unless `defaultUser: false`. */
export const ALICE: HtpasswdUser = { user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 5 };

export interface TestStackOptions {
  /** Users added after alice (or instead of her, with `defaultUser: false`). */
  users?: HtpasswdUser[];
  defaultUser?: boolean;
  /** `--public-url`; none by default. */
  publicUrl?: string;
  /** `--realm`; the gateway's default when left out. */
  realm?: string;
  /** `--log-level` and the level of the in-memory logger; `info` by default. */
  logLevel?: LogLevel;
  /** `--upstream-timeout`, in seconds. */
  upstreamTimeoutSeconds?: number;
  /** More `serve` flags, appended last. */
  extraArgs?: string[];
  /** Options of the registry behind the gateway. */
  registry?: RegistryOptions;
  /**
   * An upstream URL to put the gateway in front of instead of a registry of its own (a stand-in from
   * upstreams.ts): no registry is started, and the stack's `registry` must not be used.
   */
  upstream?: string;
  /**
   * `--auth token`, with the token key in the stack's folder (`token.key`) and
   * `--token-service gateway.test` (other token flags go in extraArgs).
   */
  tokenAuth?: boolean;
  /** An access file with this text, in the stack's folder (`access.yml`), as `--access`. */
  access?: string;
  /** Names in the server certificate; `localhost` and 127.0.0.1 / ::1 by default. */
  certHosts?: string[];
  certIps?: string[];
}

export interface TestResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

export interface TestRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Several buffers are written one by one, so the body goes out chunked with no Content-Length. */
  body?: string | Buffer | Buffer[];
  auth?: string | false;
}

export interface TestStack {
  readonly gateway: RunningGateway;
  /** The registry behind the gateway; throws for a stack started with `upstream`. */
  readonly registry: TestRegistry;
  /** What the gateway forwards to (`--upstream`): the registry's URL or the `upstream` option. */
  readonly upstreamUrl: string;
  readonly pki: TestPki;
  /** Temporary folder of this stack (PKI in pki/, htpasswd file); removed by stop(). */
  readonly dir: string;
  readonly htpasswdFile: string;
  readonly users: readonly HtpasswdUser[];
  readonly config: Config;
  /** The `serve` flags the configuration was loaded from. */
  readonly argv: readonly string[];
  /** `https://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, the registry host name clients use. */
  readonly host: string;
  /** JSON log lines the gateway wrote so far, parsed. */
  logLines(): Array<Record<string, unknown>>;
  clearLogs(): void;
  /** `Basic ...` for a user of this stack (alice by default). */
  authorization(user?: string): string;
  /**
   * One HTTPS request to the gateway, trusting the test CA. `auth` is a user name of this stack
   * (alice by default) or false for none; an `authorization` header given in `headers` wins.
   */
  request(
    path: string,
    options?: TestRequestOptions,
  ): Promise<TestResponse>;
  /** Closes the gateway, stops the registry and removes the temp folder. Idempotent. */
  stop(): Promise<void>;
}

export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

export interface GatewayFiles {
  /** The temporary folder: pki/ and htpasswd. */
  readonly dir: string;
  /** Server certificate for localhost and 127.0.0.1. */
  readonly pki: TestPki;
  /** An htpasswd file with alice (password `alice-secret`, bcrypt cost 5). */
  readonly htpasswd: string;
  /** Removes the folder. */
  remove(): Promise<void>;
}

/** What `serve` needs for TLS and sign-in, in a new temporary folder named after `prefix`. */
export async function makeGatewayFiles(prefix: string): Promise<GatewayFiles> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
    const htpasswd = join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, [ALICE]);
    return { dir, pki, htpasswd, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

export async function startTestStack(options: TestStackOptions = {}): Promise<TestStack> {
  const dir = await mkdtemp(join(tmpdir(), 'rgw-stack-'));
  let registry: TestRegistry | null = null;
  let gateway: RunningGateway | null = null;
  const cleanup = async (): Promise<void> => {
    try {
      if (gateway !== null) await gateway.close();
    } finally {
      try {
        if (registry !== null) await registry.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  };

  try {
    const pki = await makeTestPki(join(dir, 'pki'), {
      hosts: options.certHosts ?? ['localhost'],
      ips: options.certIps ?? ['127.0.0.1', '::1'],
    });
    const users = [...(options.defaultUser === false ? [] : [ALICE]), ...(options.users ?? [])];
    const htpasswdFile = join(dir, 'htpasswd');
    await writeHtpasswd(htpasswdFile, users);
    if (options.upstream === undefined) registry = await startRegistry(options.registry);
    const upstreamUrl = options.upstream ?? registry!.url;

    const logLevel = options.logLevel ?? 'info';
    const argv = [
      '--listen', '127.0.0.1:0',
      '--upstream', upstreamUrl,
      '--tls-cert', pki.serverCert,
      '--tls-key', pki.serverKey,
      '--htpasswd', htpasswdFile,
      '--log-level', logLevel,
    ];
    if (options.realm !== undefined) argv.push('--realm', options.realm);
    if (options.publicUrl !== undefined) argv.push('--public-url', options.publicUrl);
    if (options.upstreamTimeoutSeconds !== undefined) argv.push('--upstream-timeout', String(options.upstreamTimeoutSeconds));
    if (options.tokenAuth) argv.push('--auth', 'token', '--token-key', join(dir, 'token.key'), '--token-service', TOKEN_SERVICE);
    if (options.access !== undefined) {
      await writeFile(join(dir, 'access.yml'), options.access);
      argv.push('--access', join(dir, 'access.yml'));
    }
    argv.push(...(options.extraArgs ?? []));
    // An empty environment: GATEWAY_* variables of the machine running the tests must not leak in.
    const setup = await loadGatewaySetup(argv, {});
    const { config } = setup;

    let lines: string[] = [];
    // The gateway's own logger (same fields, same redaction), writing into memory.
    const logger = createLogger(logLevel, {
      write(chunk: string) {
        for (const line of chunk.split('\n')) if (line !== '') lines.push(line);
      },
    });
    gateway = await startGateway(setup, { logger });
    const running = gateway;
    const ownRegistry = registry;
    const url = running.url;
    const host = new URL(url).host;
    const passwords = new Map(users.map((u) => [u.user, u.password]));

    const authorization = (user = 'alice'): string => {
      const password = passwords.get(user);
      if (password === undefined) throw new Error(`no user ${user} in this test stack`);
      return basicAuthorization(user, password);
    };

    let stopped = false;
    const stack: TestStack = {
      gateway: running,
      get registry(): TestRegistry {
        if (ownRegistry === null) throw new Error(`this test stack has no registry: its gateway is in front of ${upstreamUrl}`);
        return ownRegistry;
      },
      upstreamUrl,
      pki,
      dir,
      htpasswdFile,
      users,
      config,
      argv,
      url,
      host,
      logLines() {
        return lines.map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            throw new Error(`the gateway wrote a log line that is not JSON: ${line}`);
          }
        });
      },
      clearLogs() {
        lines = [];
      },
      authorization,
      request(path, reqOptions = {}) {
        // With a public URL, clients reach the gateway by its name, so Host says it (a test may say otherwise).
        const headers: Record<string, string> = options.publicUrl === undefined ? {} : { host: new URL(options.publicUrl).host };
        const auth = reqOptions.auth ?? 'alice';
        if (auth !== false) headers.authorization = authorization(auth);
        Object.assign(headers, reqOptions.headers ?? {});
        return new Promise<TestResponse>((resolve, reject) => {
          const req = httpsRequest(
            new URL(path, url),
            // The TLS name is fixed to one the test certificate covers, so Host may say anything.
            { method: reqOptions.method ?? 'GET', headers, ca: pki.caPem, servername: 'localhost', agent: false },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.once('error', reject);
              res.once('end', () => {
                const body = Buffer.concat(chunks);
                resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
              });
            },
          );
          req.once('error', reject);
          const body = reqOptions.body;
          if (Array.isArray(body)) {
            for (const chunk of body) req.write(chunk);
            req.end();
          } else {
            req.end(body);
          }
        });
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
      },
    };
    return stack;
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}
