// The gateway as users run it: `registry-gateway serve` in a process of its own, with its
// metrics listener on a port of the test's choosing.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { freePort } from './tools.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

export interface CliGateway {
  readonly child: ChildProcess;
  readonly port: number;
  /** `http://127.0.0.1:PORT/metrics` */
  readonly metricsUrl: string;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  /** One scrape, parsed: series (`name{labels}`) -> value. */
  scrape(): Promise<Map<string, number>>;
  /** One HTTPS request (new connection unless an agent is given), with how long it took. */
  request(path: string, options?: CliRequestOptions): Promise<CliResponse>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

export interface CliRequestOptions {
  method?: string;
  authorization?: string;
  body?: Buffer;
  agent?: https.Agent;
  headers?: Record<string, string>;
  /** The loopback address to connect from (127.0.0.2 ...), to be another client. */
  localAddress?: string;
}

export interface CliResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

/**
 * Starts `serve` with these flags plus --listen and --metrics-listen on free loopback ports; `ca`
 * is the PEM clients trust, `processes` how many must report listening (--workers).
 */
export async function spawnCliGateway(args: readonly string[], ca: string, processes = 1): Promise<CliGateway> {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, ...args], {
    env: { PATH: process.env.PATH ?? '' },
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const ready = async () => {
    try {
      await getText(metricsUrl);
      return (await httpsRequest(port, ca, '/healthz', {})).status === 200;
    } catch {
      return false;
    }
  };
  // Every process has said it listens (with --workers, which needs --log-level info), and both ports answer.
  while ((output.match(/registry-gateway listening/g) ?? []).length < (processes > 1 ? processes : 0) || !(await ready())) {
    if (child.exitCode !== null) throw new Error(`the gateway exited ${child.exitCode}:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    port,
    metricsUrl,
    output: () => output,
    scrape: async () => parsePrometheus(await getText(metricsUrl)),
    request: (path, options = {}) => httpsRequest(port, ca, path, options),
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

function httpsRequest(port: number, ca: string, path: string, options: CliRequestOptions): Promise<CliResponse> {
  const started = performance.now();
  return new Promise((done, fail) => {
    const headers: Record<string, string> = { ...options.headers, ...(options.authorization ? { authorization: options.authorization } : {}) };
    const req = https.request(
      {
        host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, ca, servername: 'localhost', agent: options.agent ?? false,
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
    req.end(options.body);
  });
}

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
