// /metrics on --metrics-listen: off unless asked for, counts what users do (requests, bytes,
// refused logins, upstream failures) with labels no client controls, and one scrape of a
// --workers gateway adds up every process.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/upstreams.js';
import { eventually } from '../helpers/wait.js';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { freePort } from '../helpers/tools.js';

let stack: TestStack; // its registry, PKI and htpasswd; the gateway under test is the CLI's
let gateway: GatewayProcess;
beforeAll(async () => {
  stack = await startTestStack();
  gateway = await startGatewayProcess(cliArgs(stack.registry.url), { ca: stack.pki.caPem, metrics: true });
});
afterAll(async () => {
  await gateway?.stop();
  await stack?.stop();
});

function cliArgs(upstream: string, extra: string[] = []): string[] {
  return ['--upstream', upstream, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
    '--workers', '1', '--log-level', 'warn', ...extra];
}

/** How much each series grew between two scrapes (absent before = 0). */
function growth(before: Map<string, number>, after: Map<string, number>, series: string): number {
  return (after.get(series) ?? 0) - (before.get(series) ?? 0);
}

describe('metrics', () => {
  it('are off unless --metrics-listen is given, and never on the public port', async () => {
    expect(stack.gateway.metrics).toBeNull();
    const res = await stack.request('/metrics');
    expect(res.status).toBe(404);
    expect((await gateway.request('/metrics', { authorization: stack.authorization() })).status).toBe(404);
  });

  it('count requests by method and status, body bytes both ways, and refused logins by reason', async () => {
    const alice = stack.authorization();
    const before = await gateway.scrape();
    expect((await gateway.request('/v2/')).status).toBe(401);
    expect((await gateway.request('/v2/', { authorization: basicAuthorization('alice', 'wrong') })).status).toBe(401);
    expect((await gateway.request('/v2/', { authorization: 'Basic !!!' })).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await gateway.request('/v2/', { authorization: alice })).status).toBe(200);
    expect((await gateway.request('/v2/metrics-test/manifests/absent', { method: 'HEAD', authorization: alice })).status).toBe(404);

    // A 100 KiB blob in (monolithic upload) and out again.
    const blob = Buffer.alloc(100 * 1024, 3);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const started = await gateway.request('/v2/metrics-test/blobs/uploads/', { method: 'POST', authorization: alice });
    expect(started.status).toBe(202);
    const location = new URL(String(started.headers.location), 'https://x');
    location.searchParams.set('digest', digest);
    expect((await gateway.request(location.pathname + location.search, { method: 'PUT', authorization: alice, body: blob })).status).toBe(201);
    const pulled = await gateway.request(`/v2/metrics-test/blobs/${digest}`, { authorization: alice });
    expect(pulled.body.equals(blob)).toBe(true);

    const after = await scrapeOnceCounted(gateway, before, 10);
    expect(growth(before, after, 'registry_gateway_requests_total{method="GET",code="401"}')).toBe(3);
    expect(growth(before, after, 'registry_gateway_requests_total{method="GET",code="200"}')).toBe(4);
    expect(growth(before, after, 'registry_gateway_requests_total{method="HEAD",code="404"}')).toBe(1);
    expect(growth(before, after, 'registry_gateway_requests_total{method="PUT",code="201"}')).toBe(1);
    expect(growth(before, after, 'registry_gateway_auth_failures_total{reason="missing"}')).toBe(1);
    expect(growth(before, after, 'registry_gateway_auth_failures_total{reason="mismatch"}')).toBe(1);
    expect(growth(before, after, 'registry_gateway_auth_failures_total{reason="malformed"}')).toBe(1);
    expect(growth(before, after, 'registry_gateway_received_bytes_total')).toBe(blob.length);
    expect(growth(before, after, 'registry_gateway_sent_bytes_total')).toBeGreaterThanOrEqual(blob.length);
    expect(growth(before, after, 'registry_gateway_request_duration_seconds_count{method="GET"}')).toBe(7);
    expect(growth(before, after, 'registry_gateway_request_duration_seconds_bucket{method="GET",le="+Inf"}')).toBe(7);
    expect(growth(before, after, 'registry_gateway_upstream_errors_total{kind="unavailable"}')).toBe(0);
    // The wrong password and the malformed credentials are refusals on record; the bare first request is not.
    expect(growth(before, after, 'registry_gateway_events_total{action="denied"}')).toBe(2);
    expect(growth(before, after, 'registry_gateway_events_total{action="push"}')).toBe(0);
    expect(after.get('process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(after.get('process_open_fds')).toBeGreaterThan(3);
  });

  it('name no user, path or repository in any series', async () => {
    const text = await (await fetchMetrics(gateway.metricsUrl!)).text();
    expect(text).not.toMatch(/alice|metrics-test|\/v2\//);
    expect(text).toContain('# TYPE registry_gateway_requests_total counter');
    expect(text).toContain('# TYPE registry_gateway_request_duration_seconds histogram');
  });

  it('answer only GET /metrics on their own port', async () => {
    expect((await fetchMetrics(gateway.metricsUrl!.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetchMetrics(gateway.metricsUrl!, 'POST')).status).toBe(405);
  });

  it('count the upstream refusing connections and staying silent, by kind', async () => {
    const refusedPort = await freePort();
    const silent: FakeUpstream = await startFakeUpstream(() => undefined);
    const down = await startGatewayProcess(cliArgs(`http://127.0.0.1:${refusedPort}`), { ca: stack.pki.caPem, metrics: true });
    const slow = await startGatewayProcess(cliArgs(silent.url, ['--upstream-timeout', '0.5']), { ca: stack.pki.caPem, metrics: true });
    try {
      for (let i = 0; i < 2; i++) expect((await down.request('/v2/', { authorization: stack.authorization() })).status).toBe(502);
      expect((await slow.request('/v2/', { authorization: stack.authorization() })).status).toBe(504);
      expect((await down.scrape()).get('registry_gateway_upstream_errors_total{kind="unavailable"}')).toBe(2);
      const slowSamples = await slow.scrape();
      expect(slowSamples.get('registry_gateway_upstream_errors_total{kind="timeout"}')).toBe(1);
      expect(slowSamples.get('registry_gateway_upstream_errors_total{kind="unavailable"}')).toBe(0);
    } finally {
      await Promise.all([down.stop(), slow.stop()]);
      await silent.stop();
    }
  });

  it('add up every process of a --workers 2 gateway in one scrape', async () => {
    const pair = await startGatewayProcess(cliArgs(stack.registry.url, ['--workers', '2', '--log-level', 'info']), { ca: stack.pki.caPem, metrics: true, processes: 2 });
    try {
      const before = await pair.scrape();
      for (let i = 0; i < 40; i++) expect((await pair.request('/v2/', { authorization: stack.authorization() })).status).toBe(200);
      // Each connection went to whichever process accepted it: both did some.
      const pids = new Set(pair.output().split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => (JSON.parse(l) as { pid: number }).pid));
      expect(pids.size).toBe(2);
      const samples = await scrapeOnceCounted(pair, before, 40);
      expect(growth(before, samples, 'registry_gateway_requests_total{method="GET",code="200"}')).toBe(40);
      // One verification per process at most: each process has its own credential cache.
      expect(samples.get('registry_gateway_auth_verifications_total')).toBeLessThanOrEqual(2);
    } finally {
      expect(await pair.stop()).toBe(0);
    }
  });
});

/**
 * A request is counted when the gateway's side of it closes, which can be just after the client
 * has read the whole response: scrape until all `requests` made since `before` are in.
 */
async function scrapeOnceCounted(gw: GatewayProcess, before: Map<string, number>, requests: number): Promise<Map<string, number>> {
  const total = (m: Map<string, number>) => [...m].filter(([k]) => k.startsWith('registry_gateway_requests_total{')).reduce((a, [, v]) => a + v, 0);
  let after = await gw.scrape();
  await eventually(async () => total((after = await gw.scrape())) - total(before) >= requests, 1_500, 20);
  return after;
}

function fetchMetrics(url: string, method = 'GET'): Promise<{ status: number; text(): Promise<string> }> {
  return new Promise((done, fail) => {
    const req = http.request(url, { method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, text: async () => body }));
    });
    req.on('error', fail);
    req.end();
  });
}
