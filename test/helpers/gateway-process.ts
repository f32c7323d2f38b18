// The gateway as users run it: dist/cli/main.js in a process of its own (so `npm run build` first).
// The one process spawner of the tests:
//   - spawnCli: any command (`serve`, `healthcheck`, `--help`...), output collected, nothing awaited.
//   - startGatewayProcess: `serve` on a free loopback port, resolved once /healthz answers 200 (and
//     the metrics listener, and every --workers process, when asked for).
//   - spawnGateway: startGatewayProcess with its own PKI and user alice in front of an upstream URL.
// Every process gets an environment of PATH only (plus what a test adds): GATEWAY_* variables of the
// machine running the tests must not leak in.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { ALICE, basicAuthorization, makeGatewayFiles } from './gateway.js';
import type { TestPki } from './pki.js';
import { freePort } from './tools.js';
import { eventually, sleep } from './wait.js';

/** The built CLI. */
export const GATEWAY_BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

/** One JSON line of the gateway's log. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** The JSON log lines in a gateway's output (other lines, such as plain-text notices, skipped). */
export function jsonLogLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

export interface CliOptions {
  /** Variables added to the environment (which is PATH only otherwise). */
  env?: Record<string, string>;
  cwd?: string;
  /**
   * The process's stdin: a pipe that stays open and never written (the default), or /dev/null.
   * Each test keeps the one it was written with: under load, a --workers gateway's log lines were
   * seen to arrive later with /dev/null.
   */
  stdin?: 'pipe' | 'ignore';
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The exit code (null when a signal ended it), once the process has exited. */
  readonly exit: Promise<number | null>;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Whether the process is still running. */
  alive(): boolean;
  /**
   * Resolves once `text` has appeared `count` times in the output; throws with the output when the
   * process exits first or `timeoutMs` passes.
   */
  waitForOutput(text: string, options?: { count?: number; timeoutMs?: number }): Promise<void>;
  /** SIGTERM (SIGKILL after 10 s), then the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, once it has exited. */
  kill(): Promise<void>;
}

/** `node dist/cli/main.js ARGS...`, stdout and stderr collected. */
export function spawnCli(args: readonly string[], options: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [GATEWAY_BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: [options.stdin ?? 'pipe', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  let output = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    output += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    output += c.toString();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid!,
    exit,
    output: () => output,
    stdout: () => stdout,
    stderr: () => stderr,
    alive,
    async waitForOutput(text, { count = 1, timeoutMs = 30_000 } = {}) {
      const seen = () => output.split(text).length - 1 >= count;
      const deadline = Date.now() + timeoutMs;
      while (!seen()) {
        if (!alive()) throw new Error(`the process exited (${child.exitCode ?? child.signalCode}) before writing ${JSON.stringify(text)}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms:\n${output}`);
        await sleep(50);
      }
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (alive()) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

export interface RequestOptions {
  method?: string;
  authorization?: string;
  body?: Buffer;
  agent?: https.Agent;
  headers?: Record<string, string>;
  /** The loopback address to connect from (127.0.0.2 ...), to be another client. */
  localAddress?: string;
  /** Fail when no answer has come within this long; none by default. */
  timeoutMs?: number;
}

export interface ProcessResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

export interface GatewayProcess extends CliProcess {
  readonly port: number;
  /** `http://127.0.0.1:PORT/metrics` with `metrics: true`, else undefined. */
  readonly metricsUrl: string | undefined;
  /** One scrape of the metrics listener, parsed: series (`name{labels}`) -> value. */
  scrape(): Promise<Map<string, number>>;
  /** One HTTPS request (new connection unless an agent is given), with how long it took. */
  request(path: string, options?: RequestOptions): Promise<ProcessResponse>;
  /** Open file descriptors of the (first) process, sockets included. */
  fdCount(): number;
  /** Resident memory of the (first) process, in bytes. */
  rssBytes(): number;
}

export interface GatewayProcessOptions extends CliOptions {
  /** The PEM clients trust (the readiness check and request() use it). */
  ca: string;
  /** Also `--metrics-listen` on a free loopback port. */
  metrics?: boolean;
  /** How many processes must log that they listen (with --workers N > 1, which needs --log-level info). */
  processes?: number;
  /** How long it may take to become ready; 30 s by default. */
  readyTimeoutMs?: number;
  /**
   * The address to listen on and connect to; 127.0.0.1 by default. (Docker verifies TLS only for
   * registries outside 127.0.0.0/8: see `nonLoopbackAddress` in docker.ts.)
   */
  address?: string;
  /** The TLS name request() and the readiness check ask for, also sent as Host (`NAME:PORT`); `localhost` (Host the address) by default. */
  serverName?: string;
}

/**
 * `serve --listen ADDRESS:PORT [--metrics-listen 127.0.0.1:PORT] ARGS...` on free ports (ADDRESS
 * 127.0.0.1 unless `address` says otherwise), resolved
 * once GET /healthz answers 200 (and the metrics listener answers, and `processes` processes have
 * said they listen). A process that exits or is not ready in time is an error carrying its output.
 */
export async function startGatewayProcess(args: readonly string[], options: GatewayProcessOptions): Promise<GatewayProcess> {
  const address = options.address ?? '127.0.0.1';
  const port = await freePort(address);
  const metricsPort = options.metrics === true ? await freePort() : undefined;
  const metricsUrl = metricsPort === undefined ? undefined : `http://127.0.0.1:${metricsPort}/metrics`;
  const target: Target = { address, port, ca: options.ca, serverName: options.serverName };
  const cli = spawnCli(
    ['serve', '--listen', `${address.includes(':') ? `[${address}]` : address}:${port}`, ...(metricsPort === undefined ? [] : ['--metrics-listen', `127.0.0.1:${metricsPort}`]), ...args],
    options,
  );
  const processes = options.processes ?? 1;
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  const ready = async (): Promise<boolean> => {
    if (!cli.alive()) throw new Error(`the gateway exited ${cli.child.exitCode ?? cli.child.signalCode}:\n${cli.output()}`);
    if (processes > 1 && (cli.output().match(/registry-gateway listening/g) ?? []).length < processes) return false;
    try {
      if (metricsUrl !== undefined) await getText(metricsUrl);
      // Bounded: a gateway that accepts but never answers must fail the wait, not hang it.
      return (await httpsRequest(target, '/healthz', { timeoutMs: 5_000 })).status === 200;
    } catch {
      return false;
    }
  };
  try {
    if (!(await eventually(ready, timeoutMs, 50))) throw new Error(`the gateway did not serve /healthz within ${timeoutMs} ms:\n${cli.output()}`);
  } catch (err) {
    await cli.kill();
    throw err;
  }
  const pid = cli.pid;
  return {
    ...cli,
    port,
    metricsUrl,
    scrape: async () => {
      if (metricsUrl === undefined) throw new Error('this gateway was started without metrics: true');
      return parsePrometheus(await getText(metricsUrl));
    },
    request: (path, requestOptions = {}) => httpsRequest(target, path, requestOptions),
    fdCount: () => readdirSync(`/proc/${pid}/fd`).length,
    rssBytes: () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024,
  };
}

export interface GatewayWithUser extends GatewayProcess {
  readonly pki: TestPki;
  /** `Basic ...` for alice. */
  readonly authorization: string;
  /** SIGKILL, then the temporary folder removed. */
  stop(): Promise<number | null>;
}

/**
 * A one-process gateway (`--workers 1`, `--log-level fatal` unless `extraArgs` set one) with its own
 * PKI and user alice (password `alice-secret`), in front of `upstreamUrl`.
 */
export async function spawnGateway(upstreamUrl: string, extraArgs: string[] = []): Promise<GatewayWithUser> {
  const files = await makeGatewayFiles('rgw-proc-');
  try {
    const { pki, htpasswd } = files;
    const logLevel = extraArgs.includes('--log-level') ? [] : ['--log-level', 'fatal'];
    const gateway = await startGatewayProcess(
      ['--upstream', upstreamUrl, '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1', ...logLevel, ...extraArgs],
      { ca: pki.caPem, readyTimeoutMs: 10_000, stdin: 'ignore' },
    );
    return {
      ...gateway,
      pki,
      authorization: basicAuthorization(ALICE.user, ALICE.password),
      stop: async () => {
        const code = gateway.alive() ? (await gateway.kill(), null) : gateway.child.exitCode;
        await files.remove();
        return code;
      },
    };
  } catch (err) {
    await files.remove();
    throw err;
  }
}

/** Where request() goes: the listener, the CA to trust, and the name to ask for (else localhost, with Host the address). */
interface Target {
  readonly address: string;
  readonly port: number;
  readonly ca: string;
  readonly serverName: string | undefined;
}

function httpsRequest({ address, port, ca, serverName }: Target, path: string, options: RequestOptions): Promise<ProcessResponse> {
  const started = performance.now();
  return new Promise((done, fail) => {
    const headers: Record<string, string> = {
      ...(serverName === undefined ? {} : { host: `${serverName}:${port}` }),
      ...options.headers,
      ...(options.authorization ? { authorization: options.authorization } : {}),
    };
    const req = https.request(
      {
        host: address, port, path, method: options.method ?? 'GET', headers, ca, servername: serverName ?? 'localhost', agent: options.agent ?? false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - started }));
      },
    );
    req.on('error', fail);
    if (options.timeoutMs !== undefined) req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`no answer to ${path} within ${options.timeoutMs} ms`)));
    req.end(options.body);
  });
}

/** GET over plain HTTP; rejects unless the answer is 200. */
export function getText(url: string): Promise<string> {
  return new Promise((done, fail) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? done(body) : fail(new Error(`${res.statusCode}: ${body}`))));
      })
      .on('error', fail);
  });
}

/** The Prometheus text format, samples only (comments skipped). */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}
