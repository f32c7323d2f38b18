// `registry-gateway certs`, checked the way a user would: with the real openssl, curl and a TLS server.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { certs } from '../../src/cli/certs.js';
import { makeExpiredCert, makeNotYetValidCert, makeTestPki } from '../helpers/pki.js';
import { requireTool, run, runOk } from '../helpers/tools.js';

const openssl = requireTool('openssl');
const curl = requireTool('curl');
const root = mkdtempSync(join(tmpdir(), 'certs-cli-'));
let seq = 0;

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A fresh folder name under the test root (not created). */
function freshDir(): string {
  seq += 1;
  return join(root, `case-${seq}`);
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command function with its stdout and stderr captured. */
async function runCerts(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await certs(argv, env), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

async function initOk(dir: string, ...names: string[]): Promise<Outcome> {
  const result = await runCerts(['init', '--out', dir, ...names]);
  expect(result, result.stderr).toMatchObject({ code: 0, stderr: '' });
  return result;
}

/** Writes the first certificate of a PEM file alone: openssl verify only checks the first one anyway. */
function firstCert(file: string): string {
  const [block] = readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
  expect(block).toBeDefined();
  const out = `${file}.first.pem`;
  writeFileSync(out, block!);
  return out;
}

async function x509Text(file: string): Promise<string> {
  return (await runOk(openssl, ['x509', '-in', file, '-noout', '-text'])).stdout;
}

function mode(file: string): number {
  return statSync(file).mode & 0o777;
}

function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name), 'utf8')]));
}

describe('certs init', () => {
  let dir: string;
  let init: Outcome;

  beforeAll(async () => {
    dir = freshDir();
    init = await initOk(dir, '--host', 'registry.example.com', '--host', 'localhost', '--ip', '10.0.0.5', '--ip', 'fd00::5', '--port', '8443');
  });

  test('writes exactly the CA and server files, and no temporary file is left behind', () => {
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key']);
    for (const name of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) expect(init.stdout).toContain(join(dir, name));
  });

  test('the server certificate verifies against the CA with openssl, and server.crt carries the CA after the leaf', async () => {
    const leaf = firstCert(join(dir, 'server.crt'));
    const verified = await run(openssl, ['verify', '-CAfile', join(dir, 'ca.crt'), leaf]);
    expect(verified.stdout.trim(), verified.stderr).toBe(`${leaf}: OK`);
    expect(readFileSync(join(dir, 'server.crt'), 'utf8')).toBe(readFileSync(leaf, 'utf8') + readFileSync(join(dir, 'ca.crt'), 'utf8'));
  });

  test('openssl sees a TLS server leaf with every name, the right key usage and an RSA 2048 key', async () => {
    const text = await x509Text(join(dir, 'server.crt'));
    expect(text).toContain('DNS:registry.example.com, DNS:localhost, IP Address:10.0.0.5, IP Address:FD00:0:0:0:0:0:0:5');
    expect(text).toContain('Subject: CN = registry.example.com');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication\n/);
    expect(text).toContain('Public-Key: (2048 bit)');
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toContain('X509v3 Authority Key Identifier');
  });

  test('openssl sees a CA that can only sign leaves, with an RSA 3072 key', async () => {
    const text = await x509Text(join(dir, 'ca.crt'));
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toContain('Public-Key: (3072 bit)');
  });

  test('private keys are 0600 and certificates 0644, and openssl reads both keys', async () => {
    expect(mode(join(dir, 'ca.key'))).toBe(0o600);
    expect(mode(join(dir, 'server.key'))).toBe(0o600);
    expect(mode(join(dir, 'ca.crt'))).toBe(0o644);
    expect(mode(join(dir, 'server.crt'))).toBe(0o644);
    expect(mode(dir)).toBe(0o700);
    await runOk(openssl, ['pkey', '-in', join(dir, 'server.key'), '-check', '-noout']);
    await runOk(openssl, ['pkey', '-in', join(dir, 'ca.key'), '-check', '-noout']);
  });

  test('prints how to trust the CA for each name with Docker, podman/skopeo, containerd and the system', () => {
    const ca = join(dir, 'ca.crt');
    for (const address of ['registry.example.com:8443', 'localhost:8443', '10.0.0.5:8443']) {
      expect(init.stdout).toContain(`sudo install -D -m 644 ${ca} /etc/docker/certs.d/${address}/ca.crt`);
      expect(init.stdout).toContain(`sudo install -D -m 644 ${ca} /etc/containers/certs.d/${address}/ca.crt`);
      expect(init.stdout).toContain(`/etc/containerd/certs.d/${address}/ca.crt`);
    }
    expect(init.stdout).toContain(`'/etc/docker/certs.d/[fd00::5]:8443/ca.crt'`);
    expect(init.stdout).toContain('no daemon restart needed');
    expect(init.stdout).toContain(`${ca} /usr/local/share/ca-certificates/registry-gateway.crt && sudo update-ca-certificates`);
    expect(init.stdout).toContain(`${ca} /etc/pki/ca-trust/source/anchors/registry-gateway.crt && sudo update-ca-trust`);
    expect(init.stdout).toContain('does not verify certificates of registries on 127.0.0.0/8');
  });

  test('recommends the per-registry folders first, and says what the system store means and where the CA key is', () => {
    const preferred = init.stdout.indexOf('Preferred: the per-registry folders');
    expect(preferred).toBeGreaterThan(-1);
    expect(preferred).toBeLessThan(init.stdout.indexOf('/etc/docker/certs.d/'));
    expect(init.stdout.indexOf('/etc/docker/certs.d/')).toBeLessThan(init.stdout.indexOf('update-ca-certificates'));
    expect(init.stdout).toContain('every TLS client on the machine');
    expect(init.stdout).toContain('limited by its name constraints to DNS names registry.example.com, localhost and the names under them; addresses 10.0.0.5, fd00::5');
    expect(init.stdout).toContain(`The CA key ${join(dir, 'ca.key')} signs certificates; the gateway serves without it. While it is here, the gateway`);
  });

  test('the CA carries critical name constraints for exactly the names given, and says so', async () => {
    const text = (await runOk(openssl, ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-ext', 'nameConstraints'])).stdout;
    expect(text).toContain('X509v3 Name Constraints: critical');
    expect(text).toMatch(/Permitted:\s+DNS:registry\.example\.com\s+DNS:localhost\s+IP:10\.0\.0\.5\/255\.255\.255\.255\s+IP:FD00:0:0:0:0:0:0:5\/FFFF/);
    expect(init.stdout).toContain('The CA can sign only for DNS names registry.example.com, localhost and the names under them; addresses 10.0.0.5, fd00::5.');
    const shown = await runCerts(['show', '--cert', join(dir, 'ca.crt')]);
    expect(shown.stdout).toContain('may sign     only for DNS names registry.example.com, localhost');
  });

  test('on the default port 443 the trust paths carry no port, as Docker and podman look them up', async () => {
    const other = freshDir();
    const result = await initOk(other, '--host', 'registry.example.com');
    expect(result.stdout).toContain('/etc/docker/certs.d/registry.example.com/ca.crt');
    expect(result.stdout).not.toContain('registry.example.com:443');
  });

  test.each([
    ['000', 0o000],
    ['277', 0o277],
  ])('modes do not depend on the umask (%s)', async (_label, umask) => {
    const other = freshDir();
    const previous = process.umask(umask);
    try {
      await initOk(other, '--host', 'registry.example.com');
    } finally {
      process.umask(previous);
    }
    expect(mode(other)).toBe(0o700);
    expect(mode(join(other, 'ca.key'))).toBe(0o600);
    expect(mode(join(other, 'server.key'))).toBe(0o600);
    expect(mode(join(other, 'server.crt'))).toBe(0o644);
    expect(mode(join(other, 'ca.crt'))).toBe(0o644);
  });
});

describe('certs init over existing files', () => {
  test('refuses without --force, naming each file, and changes nothing', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    const before = snapshot(dir);
    const again = await runCerts(['init', '--out', dir, '--host', 'other.example.com']);
    expect(again.code).toBe(1);
    for (const name of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) expect(again.stderr).toContain(join(dir, name));
    expect(again.stderr).toContain('--force');
    expect(snapshot(dir)).toEqual(before);
  });

  test('refuses when only one of the files exists, and writes none of the others', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    for (const name of ['ca.crt', 'ca.key', 'server.crt']) rmSync(join(dir, name));
    const again = await runCerts(['init', '--out', dir, '--host', 'registry.example.com']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(join(dir, 'server.key'));
    expect(again.stderr).not.toContain('ca.crt');
    expect(readdirSync(dir)).toEqual(['server.key']);
  });

  test('replaces everything with --force: a new CA, and a server certificate that verifies against it', async () => {
    const dir = freshDir();
    const first = await initOk(dir, '--host', 'registry.example.com');
    expect(first.stdout).not.toContain('NEW CA');
    const before = snapshot(dir);
    const forced = await initOk(dir, '--host', 'other.example.com', '--force');
    expect(forced.stdout).toContain('This is a NEW CA: every client that trusted the one it replaced must trust this one instead');
    expect(forced.stdout).toContain('registry-gateway certs renew or certs server');
    const after = snapshot(dir);
    for (const name of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) expect(after[name]).not.toBe(before[name]);
    expect(mode(join(dir, 'server.key'))).toBe(0o600);
    await runOk(openssl, ['verify', '-CAfile', join(dir, 'ca.crt'), firstCert(join(dir, 'server.crt'))]);
    expect(await x509Text(join(dir, 'server.crt'))).toContain('DNS:other.example.com');
  });
});

describe('certs init with bad input', () => {
  test.each([
    [['--ip', '300.1.1.1'], '--ip', '300.1.1.1'],
    [['--ip', 'fe80::1%eth0'], '--ip', 'fe80::1%eth0'],
    [['--host', 'bad_name.example'], '--host', 'bad_name'],
    [['--host', '*.com'], '--host', '*.com'],
    [[], '--host', '--ip'],
    [['--host', 'a.example', '--days', '0'], '--days', '"0"'],
    [['--host', 'a.example', '--days', 'ten'], '--days', '"ten"'],
    [['--host', 'a.example', '--port', '70000'], '--port', '70000'],
    [['--host', 'a.example', '--bogus'], '--bogus', 'certs init --help'],
    [['--host'], '--host', 'argument missing'],
    [['--host', 'a.example', 'stray'], 'stray', 'certs init --help'],
    [['--host', 'a.example', '--ca-domain', 'com'], '--ca-domain', 'single label'],
    [['--host', 'a.example', '--ca-domain', 'example.com,*.example.org'], '--ca-domain', 'write it as example.org'],
    [['--host', 'a.example', '--ca-domain', '10.0.0.0'], '--ca-domain', 'IP address'],
  ])('%j exits 2 naming %s', async (args, flag, detail) => {
    const dir = freshDir();
    const result = await runCerts(['init', '--out', dir, ...args]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(flag);
    expect(result.stderr).toContain(detail);
    expect(() => statSync(dir)).toThrow(/ENOENT/); // nothing made
  });
});

describe('certs init --ca-domain', () => {
  test('lets the CA also sign for the suffixes (repeated or comma-separated), which certs server then uses', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--ca-domain', 'corp.example,Lab.Example', '--ca-domain', 'corp.example');
    const text = (await runOk(openssl, ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-ext', 'nameConstraints'])).stdout;
    expect(text).toMatch(/Permitted:\s+DNS:registry\.example\.com\s+DNS:corp\.example\s+DNS:lab\.example\s+Excluded:/);
    const reissued = await runCerts(['server', '--out', dir, '--host', 'registry.corp.example', '--force']);
    expect(reissued, reissued.stderr).toMatchObject({ code: 0, stderr: '' });
    await runOk(openssl, ['verify', '-CAfile', join(dir, 'ca.crt'), '-verify_hostname', 'registry.corp.example', firstCert(join(dir, 'server.crt'))]);
  });
});

describe('certs server', () => {
  test('re-issues the server certificate from the same CA, which clients already trust', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--host', 'localhost', '--ip', '10.0.0.5');
    const before = snapshot(dir);
    const refused = await runCerts(['server', '--out', dir, '--host', 'localhost']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--force');
    const result = await runCerts(['server', '--out', dir, '--host', 'localhost', '--ip', '10.0.0.5', '--days', '30', '--force']);
    expect(result, result.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain('the server certificate for DNS:localhost, IP:10.0.0.5');
    const after = snapshot(dir);
    expect(after['ca.crt']).toBe(before['ca.crt']);
    expect(after['ca.key']).toBe(before['ca.key']);
    expect(after['server.crt']).not.toBe(before['server.crt']);
    expect(mode(join(dir, 'server.key'))).toBe(0o600);
    await runOk(openssl, ['verify', '-CAfile', join(dir, 'ca.crt'), '-verify_ip', '10.0.0.5', firstCert(join(dir, 'server.crt'))]);
  });

  test('refuses a name outside the CA\'s constraints, saying to make a new CA, and writes nothing', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    const before = snapshot(dir);
    const result = await runCerts(['server', '--out', dir, '--host', 'registry.example.org', '--force']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the CA cannot sign for registry.example.org');
    expect(result.stderr).toContain('DNS name registry.example.com and the names under it (no IP address)');
    expect(result.stderr).toContain('certs init --force');
    expect(result.stderr).toContain('--ca-domain');
    expect(snapshot(dir)).toEqual(before);
  });

  test('without ca.key (kept offline) says to bring it back, and writes nothing', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    rmSync(join(dir, 'ca.key'));
    const before = snapshot(dir);
    const result = await runCerts(['server', '--out', dir, '--host', 'registry.example.com', '--force']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${join(dir, 'ca.key')} is missing (kept offline?)`);
    expect(result.stderr).toContain('Put it back');
    expect(snapshot(dir)).toEqual(before);
  });

  test('needs a name', async () => {
    const result = await runCerts(['server', '--out', freshDir()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--host NAME or --ip ADDR');
  });
});

describe('certs show', () => {
  let dir: string;

  beforeAll(async () => {
    dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--ip', '10.0.0.5');
  });

  test('describes the certificate named by GATEWAY_TLS_CERT, with the fingerprint openssl computes', async () => {
    const cert = join(dir, 'server.crt');
    const result = await runCerts(['show'], { GATEWAY_TLS_CERT: cert });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const fingerprint = (await runOk(openssl, ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'])).stdout.trim().split('=')[1];
    expect(result.stdout).toContain(`certificate  ${cert} (GATEWAY_TLS_CERT)`);
    expect(result.stdout).toContain('subject      CN=registry.example.com');
    expect(result.stdout).toContain('names        DNS:registry.example.com, IP:10.0.0.5');
    expect(result.stdout).toContain('issuer       CN=registry-gateway CA');
    expect(result.stdout).toMatch(/not before {3}\d{4}-\d\d-\d\dT/);
    expect(result.stdout).toContain('(825 days from now)');
    expect(result.stdout).toContain(`SHA-256      ${fingerprint}`);
    expect(result.stdout).not.toContain('WARNING');
  });

  test('--cert wins over GATEWAY_TLS_CERT', async () => {
    const result = await runCerts(['show', '--cert', join(dir, 'ca.crt')], { GATEWAY_TLS_CERT: join(dir, 'server.crt') });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('subject      CN=registry-gateway CA');
  });

  test('warns when the certificate expires within 30 days', async () => {
    const short = freshDir();
    await initOk(short, '--host', 'registry.example.com', '--days', '10');
    const result = await runCerts(['show', '--cert', join(short, 'server.crt')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^WARNING: the certificate expires in 10 days, on \d{4}-/m);
  });

  test('exits 1 for an expired certificate, and for one not valid yet', async () => {
    const pki = await makeTestPki(join(freshDir(), 'pki'), { hosts: ['registry.example.com'], ips: [] });
    const expired = await makeExpiredCert(pki, { hosts: ['registry.example.com'], ips: [] });
    const old = await runCerts(['show', '--cert', expired.cert]);
    expect(old.code).toBe(1);
    expect(old.stdout).toContain('subject      CN=registry.example.com');
    expect(old.stderr).toMatch(/expired on \d{4}-/);
    const future = await makeNotYetValidCert(pki, { hosts: ['registry.example.com'], ips: [] });
    const early = await runCerts(['show', '--cert', future.cert]);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('not valid before');
  });

  test('a missing file or a file without a certificate exits 1 naming it', async () => {
    const missing = await runCerts(['show'], { GATEWAY_TLS_CERT: join(dir, 'nope.crt') });
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toContain(`${join(dir, 'nope.crt')} (GATEWAY_TLS_CERT) does not exist`);
    const key = await runCerts(['show', '--cert', join(dir, 'server.key')]);
    expect(key.code).toBe(1);
    expect(key.stderr).toContain('no PEM certificate');
  });
});

describe('certs renew', () => {
  test('with nothing to do says so, naming what the certificate covers and when it ends, and changes nothing', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--ip', '10.0.0.5');
    const before = snapshot(dir);
    const result = await runCerts(['renew', '--out', dir, '--tls-san', '10.0.0.5'], { GATEWAY_PUBLIC_URL: 'https://registry.example.com:5443' });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^nothing to do: ${join(dir, 'server.crt')} covers registry\\.example\\.com, 10\\.0\\.0\\.5, and expires on \\d{4}-\\d\\d-\\d\\d \\(825 days from now\\)\\n$`));
    expect(snapshot(dir)).toEqual(before);
  });

  test('adds the names clients use from the same CA, keeping the old ones (flags, and GATEWAY_PUBLIC_URL/GATEWAY_TLS_SANS)', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--ip', '10.0.0.5');
    const before = snapshot(dir);
    const result = await runCerts(['renew', '--out', dir, '--tls-san', 'eu.registry.example.com', '--days', '90'], { GATEWAY_TLS_SANS: 'ignored.example.org' });
    expect(result, result.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain(`Re-issued ${join(dir, 'server.crt')} from the CA in ${join(dir, 'ca.crt')}: added eu.registry.example.com.`);
    expect(result.stdout).toContain('It covers registry.example.com, eu.registry.example.com, 10.0.0.5 and is valid until');
    expect(result.stdout).toContain(`registry-gateway certs trust --out ${dir}`);
    const after = snapshot(dir);
    expect(after['ca.crt']).toBe(before['ca.crt']);
    expect(after['ca.key']).toBe(before['ca.key']);
    expect(mode(join(dir, 'server.key'))).toBe(0o600);
    const leaf = firstCert(join(dir, 'server.crt'));
    for (const check of [['-verify_hostname', 'eu.registry.example.com'], ['-verify_hostname', 'registry.example.com'], ['-verify_ip', '10.0.0.5']]) {
      await runOk(openssl, ['verify', '-CAfile', join(dir, 'ca.crt'), ...check, leaf]);
    }
    expect(await x509Text(join(dir, 'server.crt'))).toMatch(/Not After : .*\n/);
    const fromEnv = await runCerts(['renew', '--out', dir], { GATEWAY_PUBLIC_URL: 'https://www.registry.example.com', GATEWAY_TLS_SANS: 'ci.registry.example.com, 10.0.0.5' });
    expect(fromEnv, fromEnv.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(fromEnv.stdout).toContain('added www.registry.example.com, ci.registry.example.com.');
    expect(fromEnv.stdout).toContain('It covers registry.example.com, eu.registry.example.com, www.registry.example.com, ci.registry.example.com, 10.0.0.5');
  });

  test('re-issues a certificate that expires within 30 days', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--days', '10');
    const result = await runCerts(['renew', '--out', dir]);
    expect(result, result.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/: it was due to expire on \d{4}-\d\d-\d\d\.\n/);
    const shown = await runCerts(['show', '--cert', join(dir, 'server.crt')]);
    expect(shown.stdout).toContain('(825 days from now)');
    expect(shown.stdout).not.toContain('WARNING');
  });

  test('refuses a name outside the CA\'s constraints with the command for a new CA, and writes nothing', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    const before = snapshot(dir);
    const result = await runCerts(['renew', '--out', dir, '--public-url', 'https://registry.example.org:5443']);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('registry.example.org is outside its name constraints, which allow only DNS name registry.example.com');
    expect(result.stderr).toContain(`make one with: registry-gateway certs init --force --out ${dir} --host registry.example.com --host registry.example.org --port 5443`);
    expect(result.stderr).toContain('every client must trust the new ca.crt');
    expect(snapshot(dir)).toEqual(before);
  });

  test('without ca.key names the missing names and the command to run where the key is, and writes nothing', async () => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    rmSync(join(dir, 'ca.key'));
    const before = snapshot(dir);
    const result = await runCerts(['renew', '--out', dir, '--tls-san', 'eu.registry.example.com']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`does not cover eu.registry.example.com`);
    expect(result.stderr).toContain(`${join(dir, 'ca.key')} is missing (kept offline?)`);
    expect(result.stderr).toContain(`run: registry-gateway certs renew --out ${dir} --tls-san eu.registry.example.com`);
    expect(snapshot(dir)).toEqual(before);
  });

  test('leaves alone a certificate the CA in the folder did not issue', async () => {
    const pki = await makeTestPki(join(freshDir(), 'pki'), { hosts: ['registry.example.com'], ips: [] });
    const other = freshDir();
    await initOk(other, '--host', 'registry.example.com');
    writeFileSync(join(other, 'server.crt'), readFileSync(pki.serverCert));
    const result = await runCerts(['renew', '--out', other, '--tls-san', 'eu.registry.example.com']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${join(other, 'server.crt')} was not issued by the CA in ${other}`);
    expect(readFileSync(join(other, 'server.crt'), 'utf8')).toBe(readFileSync(pki.serverCert, 'utf8'));
  });

  test.each([
    [['--tls-san', 'bad_name'], {}, '--tls-san: "bad_name" cannot be a host name'],
    [[], { GATEWAY_PUBLIC_URL: 'http://registry.example.com' }, 'GATEWAY_PUBLIC_URL: "http://registry.example.com" must be an https:// URL'],
    [['--days', '0'], {}, '--days: "0"'],
  ])('%j %j exits 2 naming the option', async (args, env, message) => {
    const dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
    const result = await runCerts(['renew', '--out', dir, ...args], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  test('without a server certificate says how to make one', async () => {
    const result = await runCerts(['renew', '--out', freshDir()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('server.crt (--out) does not exist; make one with registry-gateway certs server');
  });
});

describe('certs trust', () => {
  let dir: string;
  beforeAll(async () => {
    dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com', '--host', 'localhost', '--ip', '10.0.0.5');
  });

  test('prints the instructions for --public-url\'s host and port alone', async () => {
    const result = await runCerts(['trust', '--out', dir, '--public-url', 'https://registry.example.com:5443', '--published-port', '9999']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain(`sudo install -D -m 644 ${join(dir, 'ca.crt')} /etc/docker/certs.d/registry.example.com:5443/ca.crt`);
    expect(result.stdout).not.toContain('certs.d/localhost');
    expect(result.stdout).not.toContain('9999');
    expect(result.stdout).toContain('security add-trusted-cert');
    expect(result.stdout).toContain('Import-Certificate -FilePath ca.crt');
  });

  test('without a public URL, every name of server.crt on the published port, else the listen port, 443 written as no port', async () => {
    const published = await runCerts(['trust', '--out', dir], { GATEWAY_PUBLISHED_PORT: '5000' });
    expect(published.code).toBe(0);
    for (const address of ['registry.example.com:5000', 'localhost:5000', '10.0.0.5:5000']) expect(published.stdout).toContain(`/etc/docker/certs.d/${address}/ca.crt`);
    // Nothing said: the port serve listens on, its default 8443 or GATEWAY_LISTEN's.
    const listening = await runCerts(['trust', '--out', dir]);
    expect(listening.stdout).toContain('/etc/docker/certs.d/registry.example.com:8443/ca.crt');
    const standard = await runCerts(['trust', '--out', dir], { GATEWAY_LISTEN: '0.0.0.0:443' });
    expect(standard.stdout).toContain('/etc/docker/certs.d/registry.example.com/ca.crt');
    expect(standard.stdout).not.toContain('registry.example.com:443');
    const port = await runCerts(['trust', '--out', dir, '--port', '8443'], { GATEWAY_PUBLISHED_PORT: '5000' });
    expect(port.stdout).toContain('/etc/docker/certs.d/10.0.0.5:8443/ca.crt');
    const fromEnv = await runCerts(['trust', '--out', dir], { GATEWAY_PUBLIC_URL: 'https://registry.example.com' });
    expect(fromEnv.stdout).toContain('/etc/docker/certs.d/registry.example.com/ca.crt');
    expect(fromEnv.stdout).not.toContain('10.0.0.5/ca.crt');
  });

  test('certs show points to it for a certificate the CA beside it issued, and only then', async () => {
    const shown = await runCerts(['show', '--cert', join(dir, 'server.crt')]);
    expect(shown.stdout.trimEnd().split('\n').at(-1)).toBe(`Clients trust it through ${join(dir, 'ca.crt')}: registry-gateway certs trust --out ${dir} prints how.`);
    const pki = await makeTestPki(join(freshDir(), 'pki'), { hosts: ['registry.example.com'], ips: [] });
    rmSync(pki.caCert);
    expect((await runCerts(['show', '--cert', pki.serverCert])).stdout).not.toContain('certs trust');
  });

  test('without a CA, or with a bad port, exits naming what to fix', async () => {
    const missing = await runCerts(['trust', '--out', freshDir()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ca.crt (--out) does not exist; make a CA with registry-gateway certs init');
    const badPort = await runCerts(['trust', '--out', dir, '--published-port', '0']);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toContain('--published-port: "0" is not a port');
  });
});

describe('certs client', () => {
  let dir: string;

  beforeAll(async () => {
    dir = freshDir();
    await initOk(dir, '--host', 'registry.example.com');
  });

  test('issues NAME.cert and NAME.key that verify against the CA, for client authentication', async () => {
    const result = await runCerts(['client', '--name', 'alice', '--out', dir]);
    expect(result, result.stderr).toMatchObject({ code: 0, stderr: '' });
    const cert = join(dir, 'alice.cert');
    await runOk(openssl, ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.crt'), firstCert(cert)]);
    const text = await x509Text(cert);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s+TLS Web Client Authentication\n/);
    expect(text).toContain('Subject: CN = alice');
    expect(mode(join(dir, 'alice.key'))).toBe(0o600);
    expect(result.stdout).toContain('/etc/docker/certs.d/HOST:PORT/alice.cert');
    expect(result.stdout).toContain('/etc/docker/certs.d/HOST:PORT/alice.key');
    expect(result.stdout).toContain('/etc/docker/certs.d/HOST:PORT/ca.crt');
  });

  test('refuses to replace an existing pair without --force, and replaces it with --force', async () => {
    await runCerts(['client', '--name', 'bob', '--out', dir]);
    const before = readFileSync(join(dir, 'bob.cert'), 'utf8');
    const again = await runCerts(['client', '--name', 'bob', '--out', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(join(dir, 'bob.cert'));
    expect(again.stderr).toContain('--force');
    expect(readFileSync(join(dir, 'bob.cert'), 'utf8')).toBe(before);
    expect((await runCerts(['client', '--name', 'bob', '--out', dir, '--force'])).code).toBe(0);
    expect(readFileSync(join(dir, 'bob.cert'), 'utf8')).not.toBe(before);
  });

  test('without a CA in the folder, says to run certs init first', async () => {
    const empty = freshDir();
    const result = await runCerts(['client', '--name', 'alice', '--out', empty]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(join(empty, 'ca.crt'));
    expect(result.stderr).toContain('registry-gateway certs init');
  });

  test('refuses a dotted name, which OpenSSL would check as a host name against the CA\'s constraints', async () => {
    const result = await runCerts(['client', '--name', 'ci.runner', '--out', dir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('like ci-runner');
    expect(readdirSync(dir)).not.toContain('ci.runner.cert');
  });

  test('an EC CA made with openssl (the manual recipe) is refused with a clear reason', async () => {
    const pki = await makeTestPki(join(freshDir(), 'pki'), { hosts: ['registry.example.com'], ips: [] });
    const result = await runCerts(['client', '--name', 'alice', '--out', pki.dir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('only an RSA CA key can sign');
  });

  test.each([
    [[], '--name'],
    [['--name', '../evil'], '--name'],
    [['--name', 'server'], '--name'],
    [['--name', 'alice', '--days', '0'], '--days'],
  ])('%j exits 2 naming %s, writing nothing', async (args, flag) => {
    const before = readdirSync(dir).sort();
    const result = await runCerts(['client', '--out', dir, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(flag);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(readdirSync(root)).not.toContain('evil.cert');
  });
});

describe('help', () => {
  test.each([
    [['--help'], ['init', 'server', 'renew', 'trust', 'show', 'client']],
    [['init', '--help'], ['--host NAME', '--ip ADDR', '--ca-domain SUFFIX', '--out DIR', '--days N', '--port N', '--force', 'cannot impersonate other sites', 'makes a NEW CA, which every client\n                      must trust again', 'certs renew or certs server']],
    [['renew', '--help'], ['--out DIR', '--public-url URL', '--tls-san NAME', '--days N', 'GATEWAY_PUBLIC_URL', 'GATEWAY_TLS_SANS', '30 days', 'certs init --force']],
    [['trust', '--help'], ['--out DIR', '--public-url URL', '--published-port N', 'GATEWAY_PUBLISHED_PORT', '--port N']],
    [['server', '--help'], ['--host NAME', '--ip ADDR', '--out DIR', '--days N', '--force', 'certs init --force']],
    [['show', '-h'], ['--cert FILE', 'GATEWAY_TLS_CERT', '30 days']],
    [['client', '--help'], ['--name NAME', '--out DIR', 'NAME.cert']],
  ])('%j prints its usage and exits 0', async (args, words) => {
    const result = await runCerts(args);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    for (const word of words) expect(result.stdout).toContain(word);
  });

  test('no subcommand or an unknown one exits 2', async () => {
    expect(await runCerts([])).toMatchObject({ code: 2, stdout: '' });
    const unknown = await runCerts(['bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "bogus"');
  });
});

describe('a TLS server using the generated files', () => {
  let dir: string;
  let otherDir: string;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    dir = freshDir();
    await initOk(dir, '--host', 'localhost', '--ip', '127.0.0.1');
    expect((await runCerts(['client', '--name', 'ci-runner', '--out', dir])).code).toBe(0);
    otherDir = freshDir();
    await initOk(otherDir, '--host', 'localhost');
    server = createServer(
      {
        cert: readFileSync(join(dir, 'server.crt')),
        key: readFileSync(join(dir, 'server.key')),
        ca: readFileSync(join(dir, 'ca.crt')),
        requestCert: true,
        rejectUnauthorized: false, // checked per request below, so one server serves both cases
      },
      (req, res) => {
        const socket = req.socket as TLSSocket;
        res.end(`hello ${socket.authorized ? String(socket.getPeerCertificate().subject.CN) : 'anonymous'}\n`);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  test('curl trusts it through --cacert ca.crt, by name and by IP, and refuses it without', async () => {
    const ca = join(dir, 'ca.crt');
    const byName = await run(curl, ['-sS', '--cacert', ca, `https://localhost:${port}/`]);
    expect(byName.stderr).toBe('');
    expect(byName.stdout).toBe('hello anonymous\n');
    const byIp = await run(curl, ['-sS', '--cacert', ca, `https://127.0.0.1:${port}/`]);
    expect(byIp.stdout).toBe('hello anonymous\n');
    const untrusted = await run(curl, ['-sS', `https://localhost:${port}/`]);
    expect(untrusted.code).toBe(60); // peer certificate cannot be authenticated
  });

  test('openssl s_client verifies the chain and the name strictly', async () => {
    const connect = (args: string[]) =>
      run(openssl, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-verify_return_error', ...args], { input: '' });
    const ok = await connect(['-CAfile', join(dir, 'ca.crt'), '-verify_hostname', 'localhost']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('Verify return code: 0 (ok)');
    const wrongName = await connect(['-CAfile', join(dir, 'ca.crt'), '-verify_hostname', 'registry.example.com']);
    expect(wrongName.code).not.toBe(0);
    const otherCa = await connect(['-CAfile', join(otherDir, 'ca.crt'), '-verify_hostname', 'localhost']);
    expect(otherCa.code).not.toBe(0);
    expect(otherCa.stdout + otherCa.stderr).toMatch(/unable to get local issuer certificate|certificate verify failed/);
  });

  test('the client certificate from certs client is accepted by a server trusting the CA', async () => {
    const result = await run(curl, [
      '-sS', '--cacert', join(dir, 'ca.crt'),
      '--cert', join(dir, 'ci-runner.cert'), '--key', join(dir, 'ci-runner.key'),
      `https://localhost:${port}/`,
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('hello ci-runner\n');
  });
});
