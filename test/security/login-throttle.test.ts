// Repeated failed logins for one user from one address wait (429 + Retry-After) before the next
// is even checked; other addresses and a later success are unaffected.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { sleep } from '../helpers/wait.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ extraArgs: ['--login-attempts', '3', '--login-backoff-max', '2'] });
});
afterAll(() => stack.stop());

interface Answer {
  status: number;
  retryAfter: string | undefined;
  apiVersion: string | undefined;
  body: string;
}

/** GET /v2/ with a password, from a chosen loopback address. */
function login(password: string, from: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1', port: stack.gateway.port, path: '/v2/', localAddress: from, agent: false,
        ca: stack.pki.caPem, servername: 'localhost',
        headers: { authorization: basicAuthorization(ALICE.user, password) },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] as string | undefined,
            apiVersion: res.headers['docker-distribution-api-version'] as string | undefined,
            body,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('login throttling', () => {
  it('answers 429 with Retry-After once one address fails too often for one user, and nobody else notices', async () => {
    for (let i = 0; i < 3; i++) expect((await login('wrong', '127.0.0.2')).status).toBe(401);
    const throttled = await login('wrong', '127.0.0.2');
    expect(throttled.status).toBe(429);
    expect(throttled.retryAfter).toBe('1');
    expect(throttled.apiVersion).toBe('registry/2.0');
    expect(JSON.parse(throttled.body)).toMatchObject({ errors: [{ code: 'TOOMANYREQUESTS' }] });
    // While it waits, even the right password from that address is not checked...
    expect((await login(ALICE.password, '127.0.0.2')).status).toBe(429);
    // ...but the same user from another address logs in as usual.
    expect((await login(ALICE.password, '127.0.0.3')).status).toBe(200);
    expect((await login('wrong', '127.0.0.3')).status).toBe(401);
  });

  it('lets the address try again after the wait, waits longer after the next failure, and forgets it all on a success', async () => {
    for (let i = 0; i < 3; i++) await login('wrong', '127.0.0.4');
    expect((await login('wrong', '127.0.0.4')).status).toBe(429);
    await sleep(1_100);
    expect((await login('wrong', '127.0.0.4')).status).toBe(401);
    const longer = await login('wrong', '127.0.0.4');
    expect(longer.status).toBe(429);
    expect(longer.retryAfter).toBe('2'); // doubled, and bounded by --login-backoff-max 2
    await sleep(2_100);
    expect((await login(ALICE.password, '127.0.0.4')).status).toBe(200);
    // A success clears the count: the next failures start from nothing.
    for (let i = 0; i < 2; i++) expect((await login('wrong', '127.0.0.4')).status).toBe(401);
  });

  it('refuses a throttled address even the password that just logged in from elsewhere', async () => {
    // Answering it would tell a guesser at the throttled address which guess was right.
    expect((await login(ALICE.password, '127.0.0.6')).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await login(`guess-${i}`, '127.0.0.7')).status).toBe(401);
    expect((await login(ALICE.password, '127.0.0.7')).status).toBe(429);
    expect((await login(ALICE.password, '127.0.0.6')).status).toBe(200);
  });

  it('logs the refused attempt with the user and the reason, never the password', async () => {
    stack.clearLogs();
    for (let i = 0; i < 4; i++) await login('guess-123', '127.0.0.5');
    const refused = stack.logLines().filter((l) => l.status === 429);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ user: ALICE.user, failure: 'login throttled after repeated failures' });
    expect(JSON.stringify(stack.logLines())).not.toContain('guess-123');
  });
});
