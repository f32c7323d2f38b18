// Password checks must not become a lever: a flood of wrong passwords for an expensive bcrypt user
// leaves health checks and other users' logins working, repeated requests with the same
// credentials cost one verification, and an unknown user takes as long to refuse as a wrong password.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { sleep } from '../helpers/wait.js';

const CAROL = { user: 'carol', password: 'carol-secret', algorithm: 'bcrypt' as const, cost: 12 };
const BOB = { user: 'bob', password: 'bob-secret', algorithm: 'bcrypt' as const, cost: 5 };
const DAVE = { user: 'dave', password: 'dave-secret', algorithm: 'bcrypt' as const, cost: 5 };

let stack: TestStack;
let gateway: GatewayProcess;
beforeAll(async () => {
  stack = await startTestStack({ users: [BOB, CAROL, DAVE] });
  gateway = await startGatewayProcess(
    ['--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
      '--workers', '1', '--log-level', 'warn',
      // Off: throttling would answer repeated wrong passwords with 429 and no bcrypt at all, which
      // is its own test (login-throttle); here every wrong password must cost a full verification.
      '--login-attempts', '0'],
    { ca: stack.pki.caPem, metrics: true },
  );
}, 120_000);
afterAll(async () => {
  await gateway?.stop();
  await stack?.stop();
});

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const median = (values: number[]) => percentile(values, 50);

describe('auth isolation and timing', () => {
  it('verifies 200 requests with the same credentials once', async () => {
    const alice = stack.authorization();
    const before = await gateway.scrape();
    // Half at once (they share the one verification in flight), half after (the cache answers).
    const burst = await Promise.all(Array.from({ length: 100 }, () => gateway.request('/v2/', { authorization: alice })));
    for (let i = 0; i < 100; i++) burst.push(await gateway.request('/v2/', { authorization: alice }));
    expect(burst.map((r) => r.status)).toEqual(Array(200).fill(200));
    const after = await gateway.scrape();
    const grew = (series: string) => after.get(series)! - before.get(series)!;
    expect(grew('registry_gateway_auth_verifications_total')).toBe(1);
    expect(grew('registry_gateway_auth_cache_hits_total')).toBeGreaterThanOrEqual(100);
    expect(grew('registry_gateway_auth_verification_duration_seconds_count')).toBe(1);
  }, 60_000);

  it('keeps /healthz under 100 ms at p99 and lets other users in during 50 concurrent wrong passwords for a cost-12 user', async () => {
    const bob = stack.authorization('bob');
    // bob logged in before the flood; his remembered success needs no bcrypt thread.
    expect((await gateway.request('/v2/', { authorization: bob })).status).toBe(200);
    const before = await gateway.scrape();

    let flooding = true;
    const flood = Promise.all(
      Array.from({ length: 50 }, (_, i) => gateway.request('/v2/', { authorization: basicAuthorization('carol', `guess-${i}`) })),
    ).finally(() => (flooding = false));

    // Health checks as a load balancer makes them: a new TLS connection each.
    const health: number[] = [];
    const healthChecks = (async () => {
      while (flooding) {
        const res = await gateway.request('/healthz');
        expect(res.status).toBe(200);
        health.push(res.ms);
        await sleep(20);
      }
    })();
    await sleep(200); // the flood is queued on the bcrypt threads
    const remembered = await gateway.request('/v2/', { authorization: bob });
    // dave has the right password but has not logged in yet: he waits his turn behind the
    // flood, and gets in.
    const fresh = await gateway.request('/v2/', { authorization: stack.authorization('dave') });
    const refused = await flood;
    await healthChecks;

    expect(refused.map((r) => r.status)).toEqual(Array(50).fill(401));
    expect(remembered.status).toBe(200);
    expect(remembered.ms).toBeLessThan(500);
    expect(fresh.status).toBe(200);
    expect(health.length).toBeGreaterThanOrEqual(20);
    expect(percentile(health, 99)).toBeLessThan(100);
    const after = await gateway.scrape();
    expect(after.get('registry_gateway_auth_failures_total{reason="mismatch"}')! - before.get('registry_gateway_auth_failures_total{reason="mismatch"}')!).toBe(50);
  }, 120_000);

  it('takes as long to refuse an unknown user as a known user with a wrong password (medians within 10%)', async () => {
    // Keep-alive, so the timings are the gateway's work rather than TLS handshakes.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: stack.pki.caPem });
    const unknown: number[] = [];
    const wrong: number[] = [];
    try {
      await gateway.request('/healthz', { agent });
      // Alternating, so whatever else the machine does weighs on both alike.
      for (let i = 0; i < 15; i++) {
        const a = await gateway.request('/v2/', { agent, authorization: basicAuthorization(`nobody-${i}`, `guess-${i}`) });
        const b = await gateway.request('/v2/', { agent, authorization: basicAuthorization('carol', `guess-${i}`) });
        expect([a.status, b.status]).toEqual([401, 401]);
        unknown.push(a.ms);
        wrong.push(b.ms);
      }
    } finally {
      agent.destroy();
    }
    const ratio = median(unknown) / median(wrong);
    expect(ratio, `unknown ${median(unknown).toFixed(1)} ms vs wrong password ${median(wrong).toFixed(1)} ms`).toBeGreaterThan(0.9);
    expect(ratio).toBeLessThan(1 / 0.9);
  }, 120_000);
});
