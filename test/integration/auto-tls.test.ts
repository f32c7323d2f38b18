// `serve` with no certificate at its default paths makes one, and real clients trust it through
// the CA it names; explicitly given paths are never replaced.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { freePort, requireTool, run } from '../helpers/tools.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

let dir: string;
let registry: TestRegistry;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-auto-'));
  await writeHtpasswd(join(dir, 'htpasswd'), [{ user: 'alice', password: 'alice secret:1', algorithm: 'bcrypt', cost: 5 }]);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
});

function serve(cwd: string, args: string[]) {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, output: () => output, exit };
}

describe('auto-TLS', () => {
  it('makes a CA and server certificate on first start, tells how to trust it, and skopeo verifies it strictly', async () => {
    const port = await freePort();
    const gw = serve(dir, ['--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--public-url', `https://localhost:${port}`]);
    try {
      while (!gw.output().includes('registry-gateway listening')) {
        if (gw.child.exitCode !== null) throw new Error(gw.output());
        await new Promise((r) => setTimeout(r, 50));
      }
      const log = gw.output();
      expect(log).toContain('certs/ca.crt');
      expect(log).toContain(`/etc/docker/certs.d/localhost:${port}/ca.crt`);
      expect((await stat(join(dir, 'certs', 'server.key'))).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'certs', 'ca.key'))).mode & 0o777).toBe(0o600);

      const trust = join(dir, 'trust');
      await mkdir(trust);
      await copyFile(join(dir, 'certs', 'ca.crt'), join(trust, 'ca.crt'));
      await writeOciLayout(join(dir, 'layout'), { tag: '1', layers: [{ 'a.txt': 'auto tls\n' }] });
      const env = { ...process.env, HOME: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json') };
      const skopeo = requireTool('skopeo');
      const pushed = await run(skopeo, ['copy', '--dest-cert-dir', trust, '--dest-creds', 'alice:alice secret:1', `oci:${join(dir, 'layout')}:1`, `docker://localhost:${port}/auto/app:1`], { env });
      expect(pushed.stderr).toBe('');
      expect(pushed.code).toBe(0);
      const untrusted = await run(skopeo, ['inspect', '--creds', 'alice:alice secret:1', `docker://localhost:${port}/auto/app:1`], { env });
      expect(untrusted.stderr).toMatch(/x509: certificate signed by unknown authority/);
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exit;
    }
  });

  it('uses the certificate it made on the next start instead of making another', async () => {
    const before = await readFile(join(dir, 'certs', 'server.crt'), 'utf8');
    const port = await freePort();
    const gw = serve(dir, ['--listen', `127.0.0.1:${port}`, '--upstream', registry.url]);
    while (!gw.output().includes('registry-gateway listening')) {
      if (gw.child.exitCode !== null) throw new Error(gw.output());
      await new Promise((r) => setTimeout(r, 50));
    }
    gw.child.kill('SIGTERM');
    expect(await gw.exit).toBe(0);
    expect(gw.output()).not.toContain('one was made');
    expect(await readFile(join(dir, 'certs', 'server.crt'), 'utf8')).toBe(before);
  });

  it('never replaces a certificate path given explicitly: a missing one is an error', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'rgw-auto-explicit-'));
    try {
      const gw = serve(empty, ['--listen', '127.0.0.1:0', '--tls-cert', 'mine/server.crt', '--tls-key', 'mine/server.key', '--htpasswd', join(dir, 'htpasswd')]);
      expect(await gw.exit).toBe(2);
      expect(gw.output()).toMatch(/--tls-cert: certificate file mine\/server\.crt does not exist/);
      await expect(stat(join(empty, 'mine'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(stat(join(empty, 'certs'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
