// `serve --workers N`: N processes (the primary among them) share the port, a dead worker is
// replaced, and SIGTERM stops them all cleanly.
import { spawn } from 'node:child_process';
import https from 'node:https';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { freePort } from '../helpers/tools.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

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
    const child = spawn(process.execPath, [BIN, 'serve', '--workers', '2', '--listen', `127.0.0.1:${port}`, '--upstream', stack.registry.url,
      '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile], { env: { PATH: process.env.PATH ?? '' } });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      while ((log.match(/registry-gateway listening/g) ?? []).length < 2) {
        if (child.exitCode !== null) throw new Error(log);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < 60; i++) expect(await get(port, '/v2/')).toBe(200);
      const pids = [...workerPids(log)];
      // Two processes, not two workers under a third that only supervises.
      expect(pids).toHaveLength(2);
      expect(pids).toContain(child.pid);

      process.kill(pids.find((pid) => pid !== child.pid)!, 'SIGKILL');
      while ((log.match(/registry-gateway listening/g) ?? []).length < 3) await new Promise((r) => setTimeout(r, 50));
      expect(log).toContain('a worker exited; starting a replacement');
      for (let i = 0; i < 10; i++) expect(await get(port, '/v2/')).toBe(200);

      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      await expect(get(port, '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      for (const pid of workerPids(log)) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
