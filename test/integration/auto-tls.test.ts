// `serve` with no certificate at its default paths makes one, and real clients trust it through
// the CA it names; explicitly given paths are never replaced.
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, type CliProcess } from '../helpers/gateway-process.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { freePort, requireTool, run } from '../helpers/tools.js';

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

function serve(cwd: string, args: string[], env: Record<string, string> = {}): CliProcess {
  return spawnCli(['serve', ...args], { cwd, env, stdin: 'ignore' });
}

describe('auto-TLS', () => {
  it('makes a CA and server certificate on first start, tells how to trust it, and skopeo verifies it strictly', async () => {
    const port = await freePort();
    const gw = serve(dir, ['--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--public-url', `https://localhost:${port}`]);
    try {
      await listening(gw);
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
    await listening(gw);
    gw.child.kill('SIGTERM');
    expect(await gw.exit).toBe(0);
    expect(gw.output()).not.toContain('one was made');
    expect(await readFile(join(dir, 'certs', 'server.crt'), 'utf8')).toBe(before);
  });

  it('limits the CA it made to the certificate\'s names by critical name constraints', async () => {
    const openssl = requireTool('openssl');
    const text = (await run(openssl, ['x509', '-in', join(dir, 'certs', 'ca.crt'), '-noout', '-ext', 'nameConstraints'])).stdout;
    expect(text).toContain('X509v3 Name Constraints: critical');
    expect(text).toMatch(/Permitted:\s+DNS:localhost\s/);
    expect(text).toContain('IP:127.0.0.1/255.255.255.255');
    expect(text).not.toContain('Excluded');
  });

  it('keeps serving when ca.key was moved off the volume: the server needs only server.crt and server.key', async () => {
    const certs = join(dir, 'certs');
    const offline = join(dir, 'ca.key.offline');
    const before = await readFile(join(certs, 'server.crt'), 'utf8');
    await rename(join(certs, 'ca.key'), offline);
    try {
      const port = await freePort();
      const gw = serve(dir, ['--listen', `127.0.0.1:${port}`, '--upstream', registry.url]);
      await listening(gw);
      const curl = await run(requireTool('curl'), ['-sS', '--cacert', join(certs, 'ca.crt'), `https://localhost:${port}/healthz`]);
      gw.child.kill('SIGTERM');
      expect(await gw.exit).toBe(0);
      expect(curl.code, curl.stderr).toBe(0);
      expect(gw.output()).not.toContain('one was made');
      expect(await readFile(join(certs, 'server.crt'), 'utf8')).toBe(before);
      expect((await readdir(certs)).sort()).toEqual(['ca.crt', 'server.crt', 'server.key']);
    } finally {
      await rename(offline, join(certs, 'ca.key'));
    }
  });

  it('takes GATEWAY_CA_DOMAIN into the CA it makes', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'rgw-auto-domain-'));
    try {
      const gw = serve(fresh, ['--listen', '127.0.0.1:0', '--upstream', registry.url, '--htpasswd', join(dir, 'htpasswd')], { GATEWAY_CA_DOMAIN: 'corp.example' });
      await listening(gw);
      gw.child.kill('SIGTERM');
      expect(await gw.exit).toBe(0);
      const text = (await run(requireTool('openssl'), ['x509', '-in', join(fresh, 'certs', 'ca.crt'), '-noout', '-ext', 'nameConstraints'])).stdout;
      expect(text).toContain('DNS:corp.example');
      expect(gw.output()).toContain('limited by its name constraints to DNS names');
      expect(gw.output()).toContain('Preferred: the per-registry folders');
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it('a bad GATEWAY_CA_DOMAIN is a configuration error naming it, and no CA is made without it', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'rgw-auto-bad-domain-'));
    try {
      const gw = serve(fresh, ['--listen', '127.0.0.1:0', '--htpasswd', join(dir, 'htpasswd')], { GATEWAY_CA_DOMAIN: '*.corp.example' });
      expect(await gw.exit).toBe(2);
      expect(gw.output()).toContain('GATEWAY_CA_DOMAIN: "*.corp.example": write it as corp.example');
      await expect(stat(join(fresh, 'certs'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it('with a CA but no server certificate, makes no new CA behind the clients\' back and says how to issue one', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'rgw-auto-lone-ca-'));
    try {
      await mkdir(join(fresh, 'certs'));
      await copyFile(join(dir, 'certs', 'ca.crt'), join(fresh, 'certs', 'ca.crt'));
      await copyFile(join(dir, 'certs', 'ca.key'), join(fresh, 'certs', 'ca.key'));
      const gw = serve(fresh, ['--listen', '127.0.0.1:0', '--htpasswd', join(dir, 'htpasswd')]);
      expect(await gw.exit).toBe(2);
      expect(gw.output()).toContain('registry-gateway certs server --out certs');
      expect((await readdir(join(fresh, 'certs'))).sort()).toEqual(['ca.crt', 'ca.key']);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
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

function listening(gw: CliProcess): Promise<void> {
  return gw.waitForOutput('registry-gateway listening');
}
