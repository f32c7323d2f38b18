// `serve` with no certificate at its default paths makes one, and real clients trust it through
// the CA it names; explicitly given paths are never replaced.
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogLines as logLines, spawnCli, type CliProcess } from '../helpers/gateway-process.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { writeOciLayout } from '../helpers/oci-layout.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePort, requireTool, run } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';

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
      // No new CA and no new certificate: only what the gateway keeps beside them (the web UI's
      // session secret, the record of events).
      expect((await readdir(certs)).sort()).toEqual(['ca.crt', 'events.jsonl', 'server.crt', 'server.key', 'session.key']);
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

describe('auto-TLS: the first hour', () => {
  let home: string;
  let certs: string;
  let htpasswd: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'rgw-first-hour-'));
    certs = join(home, 'certs');
    htpasswd = join(dir, 'htpasswd');
  });
  afterAll(() => rm(home, { recursive: true, force: true }));

  /** Starts serve in home on a free port, waits for it to listen, stops it; its output. */
  async function startAndStop(args: string[], cwd = home): Promise<{ port: number; stdout: string; stderr: string; lines: Array<Record<string, unknown>> }> {
    const port = await freePort();
    const gw = serve(cwd, ['--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--htpasswd', htpasswd, '--workers', '1', ...args]);
    await listening(gw);
    gw.child.kill('SIGTERM');
    expect(await gw.exit).toBe(0);
    return { port, stdout: gw.stdout(), stderr: gw.stderr(), lines: logLines(gw.stdout()) };
  }

  it('a first start prints the trust instructions on stderr as plain text, for the public host and port only', async () => {
    const { port, stderr, lines } = await startAndStop(['--public-url', 'https://registry.test:5443']);
    expect(stderr).toContain('sudo install -D -m 644 certs/ca.crt /etc/docker/certs.d/registry.test:5443/ca.crt\n');
    expect(stderr).toContain('/etc/containers/certs.d/registry.test:5443/ca.crt');
    expect(stderr).toContain('security add-trusted-cert');
    expect(stderr).toContain('Import-Certificate');
    expect(stderr).not.toContain('8443');
    expect(stderr).not.toContain(`:${port}`);
    expect(stderr).not.toContain('certs.d/localhost');
    const made = lines.find((l) => String(l.msg).includes('one was made'));
    expect(made).toMatchObject({ level: 40, ca: 'certs/ca.crt' });
    expect(made?.names).toEqual(expect.arrayContaining(['registry.test', 'localhost', '127.0.0.1']));
    expect(String(made?.msg)).toContain('registry-gateway certs trust');
    expect(String(made?.msg)).not.toContain('\n');
  });

  it('a later start with a new --public-url host re-issues from the same CA, which clients already trust', async () => {
    const caBefore = await readFile(join(certs, 'ca.crt'));
    const oldNames = new X509Certificate(await readFile(join(certs, 'server.crt'))).subjectAltName;
    const port = await freePort();
    const gw = serve(home, ['--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--htpasswd', htpasswd, '--workers', '1', '--public-url', 'https://eu.registry.test']);
    try {
      await listening(gw);
      expect(await readFile(join(certs, 'ca.crt'))).toEqual(caBefore);
      const leaf = new X509Certificate(await readFile(join(certs, 'server.crt')));
      expect(leaf.subjectAltName).toContain('DNS:eu.registry.test');
      for (const name of oldNames!.split(', ')) expect(leaf.subjectAltName).toContain(name);
      const renewed = logLines(gw.stdout()).find((l) => String(l.msg).startsWith('re-issued'));
      expect(renewed).toMatchObject({ level: 30, added: ['eu.registry.test'] });
      expect(String(renewed?.msg)).toMatch(/valid until \d{4}-\d\d-\d\d/);
      // Served at once, and verified by a client that knows only the old ca.crt.
      expect(await verifiedAs(port, caBefore, 'eu.registry.test')).toBe('ok');
      expect(await verifiedAs(port, caBefore, 'registry.test')).toBe('ok');

      // certs renew beside the running gateway: the file watcher serves the new certificate.
      expect(await verifiedAs(port, caBefore, 'www.registry.test')).not.toBe('ok');
      const renew = spawnCli(['certs', 'renew', '--tls-san', 'www.registry.test'], { cwd: home });
      expect(await renew.exit, renew.output()).toBe(0);
      expect(await eventually(async () => (await verifiedAs(port, caBefore, 'www.registry.test')) === 'ok', 10_000, 200)).toBe(true);
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exit;
    }
  });

  it('a name outside the CA\'s name constraints keeps the old certificate and says how to make a new CA', async () => {
    const before = await readFile(join(certs, 'server.crt'), 'utf8');
    const { lines } = await startAndStop(['--public-url', 'https://registry.other:5443']);
    const warning = lines.find((l) => String(l.msg).includes('A new CA is needed'));
    expect(warning).toMatchObject({ level: 40, missing: ['registry.other'], outside: ['registry.other'] });
    expect(String(warning?.msg)).toMatch(/make one with: registry-gateway certs init --force --out certs --host registry\.test .*--host registry\.other .*--ip 127\.0\.0\.1 .*--port 5443/);
    expect(String(warning?.msg)).toContain('every client must trust the new ca.crt');
    expect(await readFile(join(certs, 'server.crt'), 'utf8')).toBe(before);
  });

  it('without ca.key (kept offline), names the missing name and the command to run where the key is', async () => {
    const before = await readFile(join(certs, 'server.crt'), 'utf8');
    const offline = join(home, 'ca.key.offline');
    await rename(join(certs, 'ca.key'), offline);
    try {
      const { lines } = await startAndStop(['--tls-san', 'ci.registry.test']);
      const warning = lines.find((l) => String(l.msg).includes('is missing (kept offline?)'));
      expect(warning).toMatchObject({ level: 40, missing: ['ci.registry.test'], caKey: 'certs/ca.key' });
      expect(String(warning?.msg)).toContain('run: registry-gateway certs renew --out certs --tls-san ci.registry.test');
      expect(await readFile(join(certs, 'server.crt'), 'utf8')).toBe(before);
    } finally {
      await rename(offline, join(certs, 'ca.key'));
    }
  });

  it('renews a certificate within 30 days of its end at start, from the same CA', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'rgw-near-expiry-'));
    try {
      for (const args of [['init', '--host', 'localhost', '--ip', '127.0.0.1'], ['server', '--host', 'localhost', '--ip', '127.0.0.1', '--days', '10', '--force']]) {
        const cli = spawnCli(['certs', ...args], { cwd: fresh });
        expect(await cli.exit, cli.output()).toBe(0);
      }
      const ca = await readFile(join(fresh, 'certs', 'ca.crt'));
      const { lines } = await startAndStop([], fresh);
      const leaf = new X509Certificate(await readFile(join(fresh, 'certs', 'server.crt')));
      expect(new Date(leaf.validTo).getTime() - Date.now()).toBeGreaterThan(800 * 86_400_000);
      expect(leaf.checkIssued(new X509Certificate(ca))).toBe(true);
      expect(await readFile(join(fresh, 'certs', 'ca.crt'))).toEqual(ca);
      expect((await stat(join(fresh, 'certs', 'server.key'))).mode & 0o777).toBe(0o600);
      const renewed = lines.find((l) => String(l.msg).startsWith('re-issued'));
      expect(String(renewed?.msg)).toMatch(/because it was due to expire on \d{4}-\d\d-\d\d: it now covers localhost, 127\.0\.0\.1 and is valid until/);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it('never touches a certificate it did not make: one warning names the name it lacks', async () => {
    const pki = await makeTestPki(join(home, 'byo'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
    const before = await readFile(pki.serverCert, 'utf8');
    const { lines } = await startAndStop(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--public-url', 'https://registry.test:5443', '--tls-san', '127.0.0.1']);
    const warnings = lines.filter((l) => l.level === 40 && String(l.msg).includes('does not cover'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ missing: ['registry.test'] });
    expect(String(warnings[0]!.msg)).toContain('The gateway did not make it (its path was given by --tls-cert/--tls-key)');
    expect(await readFile(pki.serverCert, 'utf8')).toBe(before);
  });

  it('without --public-url, names the certificate\'s names on --published-port, not the port inside the container', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'rgw-published-'));
    try {
      const { port, stderr } = await startAndStop(['--published-port', '18443'], fresh);
      expect(stderr).toContain('/etc/docker/certs.d/localhost:18443/ca.crt');
      expect(stderr).toContain('/etc/docker/certs.d/127.0.0.1:18443/ca.crt');
      expect(stderr).not.toContain(`:${port}`);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it('a start refused for another reason makes no CA and leaves no certs folder behind', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'rgw-refused-'));
    try {
      const gw = serve(fresh, ['--listen', '127.0.0.1:0', '--upstream', registry.url, '--htpasswd', join(fresh, 'missing-htpasswd')]);
      expect(await gw.exit).toBe(2);
      expect(gw.output()).toContain('missing-htpasswd');
      expect(gw.output()).not.toContain('certs/server.crt');
      await expect(stat(join(fresh, 'certs'))).rejects.toMatchObject({ code: 'ENOENT' });
      const bad = serve(fresh, ['--listen', '127.0.0.1:0', '--upstream', registry.url, '--htpasswd', htpasswd, '--tls-san', 'bad_name']);
      expect(await bad.exit).toBe(2);
      expect(bad.output()).toContain('--tls-san: "bad_name" cannot be a host name');
      await expect(stat(join(fresh, 'certs'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });
});


/** Whether a TLS client trusting only `ca` accepts the gateway under `name` ('ok'), or why not. */
function verifiedAs(port: number, ca: Buffer, name: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: name }, () => {
      socket.end();
      resolve('ok');
    });
    socket.on('error', (err) => resolve(err.message));
  });
}

function listening(gw: CliProcess): Promise<void> {
  return gw.waitForOutput('registry-gateway listening');
}
