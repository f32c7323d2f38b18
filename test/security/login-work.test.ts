// Work a stranger can cause before signing in is bounded: every password check runs off the
// thread that serves, outsized credentials cost nothing, concurrent guesses count against the
// throttle while in flight, one client's burst cannot turn other clients' logins into 503, and a
// failed login takes the same time whatever the user and whatever their hash.
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { sleep } from '../helpers/wait.js';

const BOB = { user: 'bob', password: 'bob-secret', algorithm: 'bcrypt' as const, cost: 10 };
const EVE = { user: 'eve', password: 'eve-secret', algorithm: 'bcrypt' as const, cost: 5 };
const CAROL = { user: 'carol', password: 'carol-secret', algorithm: 'apr1' as const };
const DAVE = { user: 'dave', password: 'dave-secret', algorithm: 'sha' as const };

let stack: TestStack;
let open: GatewayProcess; // throttling off: every guess is verified
let guarded: GatewayProcess; // the default throttle
let apr1Only: GatewayProcess; // a file whose costliest hash is apr1 (Apache's default), throttling off
beforeAll(async () => {
  stack = await startTestStack({ users: [BOB, EVE, CAROL, DAVE] });
  const apr1File = join(stack.dir, 'apr1.htpasswd');
  await writeHtpasswd(apr1File, [CAROL]);
  const common = ['--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--workers', '1', '--log-level', 'warn'];
  [open, guarded, apr1Only] = await Promise.all([
    startGatewayProcess([...common, '--htpasswd', stack.htpasswdFile, '--login-attempts', '0'], { ca: stack.pki.caPem, metrics: true }),
    startGatewayProcess([...common, '--htpasswd', stack.htpasswdFile], { ca: stack.pki.caPem, metrics: true }),
    startGatewayProcess([...common, '--htpasswd', apr1File, '--login-attempts', '0'], { ca: stack.pki.caPem, metrics: true }),
  ]);
}, 120_000);
afterAll(async () => {
  await Promise.all([open?.stop(), guarded?.stop(), apr1Only?.stop()]);
  await stack?.stop();
});

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const median = (values: number[]) => percentile(values, 50);
const grew = (before: Map<string, number>, after: Map<string, number>, series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);
const VERIFICATIONS = 'registry_gateway_auth_verifications_total';

describe('work before sign-in', () => {
  it('keeps /healthz fast while four clients send wrong 1 KiB passwords for an apr1 user', async () => {
    let flooding = true;
    let sent = 0;
    const flooder = async (n: number) => {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: stack.pki.caPem });
      try {
        for (let i = 0; flooding; i++) {
          const res = await apr1Only.request('/v2/', { agent, authorization: basicAuthorization('carol', `${n}-${i}-`.padEnd(1024, 'x')) });
          expect(res.status).toBe(401);
          sent++;
        }
      } finally {
        agent.destroy();
      }
    };
    const flood = Promise.all([0, 1, 2, 3].map(flooder));
    const health: number[] = [];
    await sleep(300);
    for (let i = 0; i < 40; i++) {
      const res = await apr1Only.request('/healthz');
      expect(res.status).toBe(200);
      health.push(res.ms);
      await sleep(20);
    }
    flooding = false;
    await flood;
    expect(sent).toBeGreaterThan(40);
    // A new TLS connection each: the handshake is most of it. With apr1 on the serving thread
    // (1000 MD5 rounds over a 1 KiB password, ~4 ms a check, back to back) these queued behind it.
    expect(median(health), `p50 ${median(health).toFixed(1)} ms`).toBeLessThan(25);
    expect(percentile(health, 90)).toBeLessThan(100);
  }, 60_000);

  it('refuses a 12 KB password and a 300-byte user name with the same 401, verifying nothing', async () => {
    const before = await open.scrape();
    const long = await open.request('/v2/', { authorization: basicAuthorization('carol', 'x'.repeat(12_000)) });
    const wide = await open.request('/v2/', { authorization: basicAuthorization('u'.repeat(300), 'pw') });
    const plain = await open.request('/v2/', { authorization: basicAuthorization('carol', 'wrong') });
    for (const res of [long, wide, plain]) {
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(plain.headers['www-authenticate']);
      expect(JSON.parse(res.body.toString())).toEqual(JSON.parse(plain.body.toString()));
    }
    expect(grew(before, await open.scrape(), VERIFICATIONS)).toBe(1); // the plain wrong password only
  });

  it('verifies at most --login-attempts of 40 concurrent wrong passwords for one user from one address', async () => {
    const before = await guarded.scrape();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => guarded.request('/v2/', { localAddress: '127.0.0.20', authorization: basicAuthorization('eve', `guess-${i}`) })),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(35);
    expect(grew(before, await guarded.scrape(), VERIFICATIONS)).toBe(5);
    // The same user from another address is not held up.
    expect((await guarded.request('/v2/', { localAddress: '127.0.0.21', authorization: basicAuthorization('eve', EVE.password) })).status).toBe(200);
  }, 60_000);

  it("lets other clients log in while one client's burst of 400 logins fills the verification queue", async () => {
    // 400 different unknown users from one address: each a first try, none throttled.
    const burst = Promise.all(
      Array.from({ length: 400 }, (_, i) => open.request('/v2/', { localAddress: '127.0.0.30', authorization: basicAuthorization(`nobody-${i}`, 'guess') })),
    );
    await sleep(1_500); // the queue is full by now
    const others = await Promise.all(
      ['127.0.0.31', '127.0.0.32', '127.0.0.33'].map((from) => open.request('/v2/', { localAddress: from, authorization: basicAuthorization('eve', EVE.password) })),
    );
    const statuses = (await burst).map((r) => r.status);
    expect(others.map((r) => r.status)).toEqual([200, 200, 200]);
    // The burst itself was told to come back later for what did not fit.
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 503 && s !== 401)).toEqual([]);
  }, 120_000);

  it('refuses an unknown user, a bcrypt-10 user, a bcrypt-5 user, an apr1 user and a {SHA} user after the same time (medians within 15%)', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: stack.pki.caPem });
    const users = ['nobody', 'bob', 'eve', 'carol', 'dave'];
    const times = new Map(users.map((u) => [u, [] as number[]]));
    try {
      await open.request('/healthz', { agent });
      // Alternating, so whatever else the machine does weighs on all alike.
      for (let i = 0; i < 20; i++) {
        for (const user of users) {
          const res = await open.request('/v2/', { agent, authorization: basicAuthorization(user === 'nobody' ? `nobody-${i}` : user, `guess-${i}`) });
          expect(res.status).toBe(401);
          times.get(user)!.push(res.ms);
        }
      }
    } finally {
      agent.destroy();
    }
    const medians = Object.fromEntries(users.map((u) => [u, median(times.get(u)!)]));
    const summary = JSON.stringify(Object.fromEntries(Object.entries(medians).map(([u, ms]) => [u, Number(ms.toFixed(1))])));
    // Without the equal wait, bcrypt-5, apr1 and {SHA} users are refused in a few ms against ~60.
    for (const user of users.slice(1)) {
      const ratio = medians[user]! / medians.nobody!;
      expect(ratio, summary).toBeGreaterThan(0.85);
      expect(ratio, summary).toBeLessThan(1 / 0.85);
    }
  }, 120_000);
});
