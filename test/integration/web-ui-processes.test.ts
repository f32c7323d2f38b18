// Web UI sessions where the gateway is more than one process: a session made by one --workers
// process is good in the others, and after a restart with the same session secret; a new secret
// ends it.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { jsonLogLines, startGatewayProcess, type GatewayProcess, type ProcessResponse } from '../helpers/gateway-process.js';

let stack: TestStack; // its registry, PKI and users; the gateway under test is the CLI's
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack?.stop());

const cookies = (res: ProcessResponse) => ([] as string[]).concat(res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!);

/** Signs alice in through the form; the session's Cookie header. */
async function signIn(gateway: GatewayProcess): Promise<string> {
  const form = await gateway.request('/ui/login');
  const csrf = /name="csrf" value="([^"]+)"/.exec(form.body.toString())![1]!;
  const body = Buffer.from(new URLSearchParams({ username: 'alice', password: 'alice-secret', csrf, next: '/' }).toString());
  const res = await gateway.request('/ui/login', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length), origin: `https://127.0.0.1:${gateway.port}`, cookie: cookies(form).join('; ') },
  });
  expect(res.status).toBe(303);
  return cookies(res).find((c) => c.startsWith('__Host-registry-session='))!;
}

describe('web UI sessions across processes', () => {
  it('holds in every --workers process and across a restart, and ends with a new secret', { timeout: 90_000 }, async () => {
    const keyFile = join(stack.dir, 'ui-session.key');
    const args = ['--workers', '2', '--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
      '--session-key', keyFile, '--events-file', join(stack.dir, 'events.jsonl')];
    const start = () => startGatewayProcess(args, { ca: stack.pki.caPem, processes: 2 });
    let gateway = await start();
    try {
      const cookie = await signIn(gateway);
      // Each request on a new connection: both processes take some.
      for (let i = 0; i < 30; i++) expect((await gateway.request('/', { headers: { cookie } })).status).toBe(200);
      const served = new Set(jsonLogLines(gateway.output()).filter((l) => l.msg === 'request' && l.path === '/').map((l) => l.pid));
      expect(served.size).toBe(2);

      await gateway.stop();
      gateway = await start();
      expect((await gateway.request('/', { headers: { cookie } })).status).toBe(200);

      await gateway.stop();
      await rm(keyFile);
      gateway = await start();
      const ended = await gateway.request('/', { headers: { cookie } });
      expect(ended.status).toBe(303);
      expect(ended.headers.location).toMatch(/^\/ui\/login/);
    } finally {
      await gateway.kill();
    }
  });
});
