// Load (security suite, item 13): wrk holds 500 connections for 60 s on an authenticated manifest
// GET through the gateway (the real CLI, one process, default settings) in front of the real
// registry. Every request must succeed, and /healthz, asked on a new connection every second as a
// container health check does, must answer throughout.
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { requireTool, run } from '../helpers/tools.js';
import { MEDIA_TYPES, pushImage } from '../helpers/registry-api.js';
import { sleep } from '../helpers/wait.js';

const CONNECTIONS = 500;
const SECONDS = 60;
/** What `registry-gateway healthcheck` (the image's HEALTHCHECK) waits for an answer. */
const HEALTH_BOUND_MS = 5_000;

let stack: TestStack;
let gateway: GatewayProcess;
let port: number;
let target: string;

/** The CLI gateway in front of the stack's registry, with the stack's certificate and users. */
async function startCliGateway(): Promise<GatewayProcess> {
  // At warn, nothing is logged on a good start: the first answer from /healthz says it listens.
  const child = await startGatewayProcess(['--upstream', stack.registry.url,
    '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
    '--workers', '1', '--log-level', 'warn'], { ca: stack.pki.caPem, readyTimeoutMs: 30_000 });
  port = child.port;
  return child;
}

/** GET /healthz on a new connection; resolves with the status and how long the answer took. */
function health(): Promise<{ status: number; ms: number }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/healthz', ca: stack.pki.caPem, servername: 'localhost', agent: false, timeout: 30_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'warn' });
  const image = await pushImage(stack, 'load/app', 'v1');
  target = `/v2/${image.repo}/manifests/${image.tag}`;
  gateway = await startCliGateway();
}, 90_000);

afterAll(async () => {
  await gateway?.kill();
  await stack?.stop();
});

describe('load', () => {
  it(`serves ${CONNECTIONS} connections for ${SECONDS} s of authenticated manifest GETs without an error, and /healthz answers throughout`, async () => {
    const wrk = requireTool('wrk');
    // wrk needs a descriptor per connection; raise the soft limit as far as the hard one allows.
    const load = run('bash', ['-c', 'ulimit -n "$(ulimit -Hn)"; exec "$@"', 'wrk', wrk,
      '--threads', '2', '--connections', String(CONNECTIONS), '--duration', `${SECONDS}s`, '--timeout', '10s', '--latency',
      '--header', `Authorization: ${stack.authorization()}`, '--header', `Accept: ${MEDIA_TYPES.manifest}`,
      `https://127.0.0.1:${port}${target}`], { timeoutMs: (SECONDS + 30) * 1000 });

    let running = true;
    void load.finally(() => (running = false));
    const checks: Array<{ status: number; ms: number } | { error: string }> = [];
    // wrk opens all its connections at once; on a shared 2-core machine the gateway takes seconds
    // to shake hands with 500 clients while the first of them already keep it busy (manifests
    // come from its cache, as fast as it can send them), and a check in that burst waits its turn.
    // The first check marks the end of the burst (the gateway holds them all); from then on every
    // check must answer within the bound.
    await sleep(2_000);
    const burst = await health();
    expect(burst.status, 'health check during the connection burst').toBe(200);
    while (running) {
      checks.push(await health().catch((err: Error) => ({ error: err.message })));
      await sleep(1_000);
    }

    const result = await load;
    const report = `${result.stdout}${result.stderr}`;
    expect(result.code, report).toBe(0);
    expect(report).toContain(`${CONNECTIONS} connections`);
    // wrk prints these lines only when something went wrong.
    expect(report).not.toMatch(/Socket errors/);
    expect(report).not.toMatch(/Non-2xx or 3xx responses/);
    const requests = Number(/(\d+) requests in/.exec(report)?.[1] ?? 0);
    // Every connection made requests the whole time, not one or two each.
    expect(requests, report).toBeGreaterThan(CONNECTIONS * 20);

    expect(checks.length, 'health checks made while wrk ran').toBeGreaterThan(SECONDS / 3);
    const late = checks.filter((c) => !('status' in c) || c.status !== 200 || c.ms > HEALTH_BOUND_MS);
    expect(late, `health checks that failed or took over ${HEALTH_BOUND_MS} ms, of ${JSON.stringify(checks)}`).toEqual([]);

    expect(gateway.child.exitCode, gateway.output()).toBeNull();
    expect(gateway.output(), 'the gateway logged errors under load').not.toMatch(/"level":(50|60)/);
    expect((await health()).status).toBe(200);
  }, (SECONDS + 60) * 1000);
});
