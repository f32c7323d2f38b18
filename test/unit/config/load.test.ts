// Start-up reads real files (certificate, key, htpasswd), so these tests make them.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewaySetup } from '../../../src/server/resources.js';
import { GatewayError } from '../../../src/errors.js';
import { writeHtpasswd } from '../../helpers/htpasswd.js';
import { createCa, createServerCertificate, normalizeServerNames } from '../../../src/tls/certificates.js';
import { constraintsFor } from '../../../src/tls/name-constraints.js';
import { makeExpiredCert, makeMismatchedPair, makeTestPki, type TestPki } from '../../helpers/pki.js';

let dir: string;
let pki: TestPki;
let htpasswd: string;
const names = { hosts: ['localhost'], ips: ['127.0.0.1'] };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-config-'));
  pki = await makeTestPki(join(dir, 'pki'), names);
  htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, [{ user: 'alice', password: 'pw', algorithm: 'bcrypt', cost: 5 }]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function problemsOf(argv: string[], env: Record<string, string> = {}): Promise<readonly string[]> {
  const err = await loadGatewaySetup(argv, env).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  expect((err as GatewayError).code).toBe('CONFIG_INVALID');
  expect((err as GatewayError).exitCode).toBe(2);
  return (err as GatewayError).problems;
}

describe('loadGatewaySetup', () => {
  it('gives a frozen config from flags, with defaults for the rest', async () => {
    const { config, users, tls } = await loadGatewaySetup(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd], {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(config.upstream.origin).toBe('http://127.0.0.1:5000');
    expect(config.realm).toBe('Registry Realm');
    expect(config.publicUrl).toBeNull();
    expect([...users.keys()]).toEqual(['alice']);
    expect(tls.certificates.current().cert).toContain('BEGIN CERTIFICATE');
  });

  it('takes every option from the environment too, and a flag wins', async () => {
    const env = {
      GATEWAY_TLS_CERT: pki.serverCert,
      GATEWAY_TLS_KEY: pki.serverKey,
      GATEWAY_HTPASSWD: htpasswd,
      GATEWAY_LISTEN: '127.0.0.1:9000',
      GATEWAY_PUBLIC_URL: 'https://registry.example.com',
      GATEWAY_REALM: 'Env',
    };
    const { config } = await loadGatewaySetup(['--realm', 'Flag'], env);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(config.publicUrl?.origin).toBe('https://registry.example.com');
    expect(config.realm).toBe('Flag');
  });

  it('reports every problem at once, each naming its flag or variable', async () => {
    const problems = await problemsOf(
      ['--listen', 'nowhere', '--tls-cert', join(dir, 'missing.crt'), '--htpasswd', join(dir, 'missing-htpasswd'), '--log-level', 'loud'],
      { GATEWAY_UPSTREAM: 'ftp://registry', GATEWAY_TLS_KEY: join(dir, 'missing.key') },
    );
    expect(problems).toHaveLength(6);
    expect(problems.find((p) => p.startsWith('--listen:'))).toContain('HOST:PORT');
    expect(problems.find((p) => p.startsWith('GATEWAY_UPSTREAM:'))).toContain('http://');
    expect(problems.find((p) => p.startsWith('--tls-cert:'))).toContain('missing.crt does not exist');
    expect(problems.find((p) => p.startsWith('GATEWAY_TLS_KEY:'))).toContain('missing.key does not exist');
    expect(problems.find((p) => p.startsWith('--htpasswd:'))).toContain('missing-htpasswd');
    expect(problems.find((p) => p.startsWith('--log-level:'))).toContain('loud');
  });

  it('has metrics off by default, and takes --metrics-listen on a port of its own', async () => {
    const files = ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd];
    expect((await loadGatewaySetup(files, {})).config.metricsListen).toBeNull();
    expect((await loadGatewaySetup(files, { GATEWAY_METRICS_LISTEN: '127.0.0.1:9464' })).config.metricsListen).toEqual({ host: '127.0.0.1', port: 9464 });
    const clash = await problemsOf([...files, '--listen', '0.0.0.0:8443', '--metrics-listen', '127.0.0.1:8443']);
    expect(clash).toEqual([expect.stringMatching(/^--metrics-listen: .*8443 is where the gateway itself listens/)]);
    const bad = await problemsOf([...files, '--metrics-listen', '9464']);
    expect(bad[0]).toMatch(/^--metrics-listen: "9464" is not HOST:PORT/);
  });

  it('holds 1024 connections per process by default, takes --max-connections (0: no limit) and names it when wrong', async () => {
    const files = ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd];
    expect((await loadGatewaySetup(files, {})).config.maxConnections).toBe(1024);
    expect((await loadGatewaySetup(files, { GATEWAY_MAX_CONNECTIONS: '0' })).config.maxConnections).toBe(0);
    expect((await loadGatewaySetup([...files, '--max-connections', '200'], { GATEWAY_MAX_CONNECTIONS: '0' })).config.maxConnections).toBe(200);
    expect(await problemsOf([...files, '--max-connections', 'lots'])).toEqual([expect.stringMatching(/^--max-connections: "lots" is not a whole number from 0 to 1000000/)]);
    expect(await problemsOf(files, { GATEWAY_MAX_CONNECTIONS: '-1' })).toEqual([expect.stringMatching(/^GATEWAY_MAX_CONNECTIONS: "-1"/)]);
  });

  it('keeps manifests 1 s by default, takes --manifest-cache-ttl (0: off) and names it when wrong', async () => {
    const files = ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd];
    expect((await loadGatewaySetup(files, {})).config.manifestCacheMs).toBe(1000);
    expect((await loadGatewaySetup(files, { GATEWAY_MANIFEST_CACHE_TTL: '0' })).config.manifestCacheMs).toBe(0);
    expect((await loadGatewaySetup([...files, '--manifest-cache-ttl', '30'], { GATEWAY_MANIFEST_CACHE_TTL: '0' })).config.manifestCacheMs).toBe(30_000);
    expect(await problemsOf([...files, '--manifest-cache-ttl', '0.5'])).toEqual([expect.stringMatching(/^--manifest-cache-ttl: "0.5" is not a whole number of seconds/)]);
    expect(await problemsOf(files, { GATEWAY_MANIFEST_CACHE_TTL: '-1' })).toEqual([expect.stringMatching(/^GATEWAY_MANIFEST_CACHE_TTL: "-1" is not a whole number of seconds/)]);
  });

  it('refuses an expired certificate', async () => {
    const expired = await makeExpiredCert(pki, names);
    const problems = await problemsOf(['--tls-cert', expired.cert, '--tls-key', expired.key, '--htpasswd', htpasswd]);
    expect(problems).toEqual([expect.stringMatching(/^--tls-cert: the certificate in .* expired on \d{4}-/)]);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const pair = await makeMismatchedPair(pki, names);
    const problems = await problemsOf(['--tls-cert', pair.cert, '--tls-key', pair.key, '--htpasswd', htpasswd]);
    expect(problems).toEqual([expect.stringContaining('does not belong to the certificate')]);
  });

  it('refuses files that are not PEM', async () => {
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    const problems = await problemsOf(['--tls-cert', junk, '--tls-key', junk, '--htpasswd', htpasswd]);
    expect(problems).toEqual([expect.stringContaining('holds no PEM certificate'), expect.stringContaining('not an unencrypted PEM private key')]);
  });

  it('names the htpasswd line a user cannot log in with', async () => {
    const bad = join(dir, 'bad-htpasswd');
    await writeFile(bad, '# users\nalice:$6$salt$abcdefghijklmnop\n');
    const problems = await problemsOf(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', bad]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^--htpasswd: .*bad-htpasswd:2: user "alice"/);
    expect(problems[0]).not.toContain('abcdefghijklmnop');
  });

  it('warns, in one line, about a certificate from a gateway-made CA without name constraints, and only then', async () => {
    const write = async (name: string, constrained: boolean) => {
      const ca = createCa(constrained ? { constraints: constraintsFor(normalizeServerNames(['localhost'], ['127.0.0.1']), []) } : {});
      const server = createServerCertificate(ca, names);
      const cert = join(dir, `${name}.crt`);
      const key = join(dir, `${name}.key`);
      await writeFile(cert, server.cert);
      await writeFile(key, server.key, { mode: 0o600 });
      return ['--tls-cert', cert, '--tls-key', key, '--htpasswd', htpasswd];
    };
    const old = await loadGatewaySetup(await write('old-ca', false), {});
    expect(old.tls.warnings).toEqual([expect.stringMatching(/^the CA that signed .*old-ca\.crt has no name constraints, so whoever holds its key can sign for any site/)]);
    expect(old.tls.warnings[0]).toContain('registry-gateway certs init --force');
    expect(old.tls.warnings[0]).not.toContain('\n');
    expect((await loadGatewaySetup(await write('limited-ca', true), {})).tls.warnings).toEqual([]);
    // Not the gateway's own CA (another name, another key type): not its business.
    expect((await loadGatewaySetup(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd], {})).tls.warnings).toEqual([]);
  });

  it('takes --ca-domain/GATEWAY_CA_DOMAIN and names it when a value is wrong', async () => {
    const files = ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd];
    await expect(loadGatewaySetup([...files, '--ca-domain', 'corp.example,lab.example'], {})).resolves.toBeDefined();
    expect(await problemsOf(files, { GATEWAY_CA_DOMAIN: 'corp.example,com' })).toEqual([expect.stringMatching(/^GATEWAY_CA_DOMAIN: "com" is a single label/)]);
    expect(await problemsOf([...files, '--ca-domain', '.corp.example'])).toEqual([expect.stringMatching(/^--ca-domain: ".corp.example": write it as corp.example/)]);
  });
});
