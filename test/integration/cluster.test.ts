// `serve --workers N`: N processes (the primary among them) share the port, a dead worker is
// replaced, and SIGTERM stops them all cleanly.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { spawnCli } from '../helpers/gateway-process.js';
import { freePort } from '../helpers/tools.js';

let stack: TestStack; // for its registry, PKI and htpasswd; the gateway under test is the CLI's
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.stop());

function get(port: number, path: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = https.request({ host: '127.0.0.1', port, path, ca: stack.pki.caPem, servername: 'localhost', agent: false,
      headers: { authorization: stack.authorization() } }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
    });
    req.on('error', fail);
    req.end();
  });
}

function workerPids(log: string): Set<number> {
  const pids = new Set<number>();
  for (const line of log.split('\n')) {
    if (!line.includes('"msg":"request"')) continue;
    pids.add((JSON.parse(line) as { pid: number }).pid);
  }
  return pids;
}

describe('serve --workers', () => {
  it('spreads connections over two processes, replaces a worker that dies, and stops all on SIGTERM', async () => {
    const port = await freePort();
    const gateway = spawnCli(['serve', '--workers', '2', '--listen', `127.0.0.1:${port}`, '--upstream', stack.registry.url,
      '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile]);
    const { child, exit } = gateway;
    try {
      await gateway.waitForOutput('registry-gateway listening', { count: 2 });
      for (let i = 0; i < 60; i++) expect(await get(port, '/v2/')).toBe(200);
      const pids = [...workerPids(gateway.output())];
      // Two processes, not two workers under a third that only supervises.
      expect(pids).toHaveLength(2);
      expect(pids).toContain(child.pid);

      process.kill(pids.find((pid) => pid !== child.pid)!, 'SIGKILL');
      await gateway.waitForOutput('registry-gateway listening', { count: 3 });
      expect(gateway.output()).toContain('a worker exited; starting a replacement');
      for (let i = 0; i < 10; i++) expect(await get(port, '/v2/')).toBe(200);

      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      await expect(get(port, '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      for (const pid of workerPids(gateway.output())) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
