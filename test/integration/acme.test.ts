// `serve --acme` against a real ACME server (Debian's pebble) on loopback: the first certificate
// through TLS-ALPN-01 on the gateway's own port and through HTTP-01 on --acme-http-listen, /readyz
// until it arrives, a restart that serves the stored certificate without asking the CA again, a CA
// that is down at start or at renewal time (and forgot the gateway's account when it came back),
// pebble's -strict mode, external account binding, and `certs show --acme`.
// Every process a test starts is stopped when the test ends, however it ends: a test that times out
// is abandoned mid-way, so its own try/finally would never run.
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { jsonLogLines, spawnCli, type CliProcess, type LogLine } from '../helpers/gateway-process.js';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { freePort } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';

const DOMAIN = 'registry.rgw.test';

let dir: string;
let registry: TestRegistry;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-acme-'));
  await writeHtpasswd(join(dir, 'htpasswd'), [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 4 }]);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The certificate a client connecting to the gateway by DOMAIN is given, verified against `ca` (null: unverified). */
function servedCertificate(port: number, ca: string | null): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: DOMAIN, ...(ca === null ? { rejectUnauthorized: false } : { ca }) }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw));
    });
    socket.once('error', reject);
  });
}

async function readyz(port: number): Promise<{ status: number; body: string }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', servername: DOMAIN, rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** Registers `stop` for when the current test ends; called at once for a thing that comes after the end. */
type Track = <T>(thing: T, stop: (thing: T) => Promise<unknown>) => T;

/**
 * What the current test starts is stopped when it ends, passed, failed or timed out (last started,
 * first stopped). A timed-out test's body goes on in the background: whatever it starts after the
 * end is stopped as soon as it is started.
 */
function cleanupAfterTest(): Track {
  const stops: Array<() => Promise<unknown>> = [];
  let ended = false;
  onTestFinished(async () => {
    ended = true;
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(err));
  }, 60_000);
  return (thing, stop) => {
    if (ended) void stop(thing).catch((err: unknown) => console.error(err));
    else stops.push(() => stop(thing));
    return thing;
  };
}

async function pebbleFor(track: Track, options: Parameters<typeof startPebble>[0]): Promise<Pebble> {
  return track(await startPebble(options), (p) => p.stop());
}

/** `serve --acme` in `home`, so that its certs folder (where ACME keeps its files) is home/certs. */
async function serveWithAcme(track: Track, pebble: Pebble, port: number, home: string, extra: string[] = []): Promise<CliProcess> {
  await mkdir(home, { recursive: true });
  const gateway = track(spawnCli([
    'serve', '--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--htpasswd', join(dir, 'htpasswd'), '--workers', '1',
    '--acme', pebble.directoryUrl, '--acme-ca-cert', pebble.caCertFile, '--acme-domains', DOMAIN, '--acme-email', 'ops@rgw.test', ...extra,
  ], { cwd: home }), (g) => g.stop());
  await gateway.waitForOutput('registry-gateway listening', { timeoutMs: 30_000 });
  return gateway;
}

/** SIGTERM, then how it went: the exit code and how long it took. */
async function stopTimed(gateway: CliProcess): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const code = await gateway.stop();
  return { code, ms: Date.now() - started };
}

/** The gateway's JSON log lines whose message contains `text`. */
function logLines(gateway: CliProcess, text: string): LogLine[] {
  return jsonLogLines(gateway.output()).filter((line) => line.msg.includes(text));
}

describe('serve --acme with pebble', { timeout: 180_000 }, () => {
  it('gets its first certificate through TLS-ALPN-01 on its own port, says not ready until then, and keeps it across a restart', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort() });
    const certs = join(dir, 'alpn');
    const gateway = await serveWithAcme(track, pebble, port, certs);
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    expect(gateway.output()).toContain('ACME tls-alpn-01 challenge for registry.rgw.test');
    const root = await pebble.rootPem();
    const intermediate = await pebble.intermediatePem();
    const served = await servedCertificate(port, `${root}\n${intermediate}`);
    expect(served.subjectAltName).toBe(`DNS:${DOMAIN}`);
    expect((await readyz(port)).status).toBe(200);
    const stored = join(certs, 'certs', 'acme');
    expect((await stat(stored)).mode & 0o777).toBe(0o700);

    expect(await gateway.stop()).toBe(0);
    const again = await serveWithAcme(track, pebble, port, certs);
    // Served at once from the files, and the CA is not asked again.
    expect((await servedCertificate(port, `${root}\n${intermediate}`)).fingerprint256).toBe(served.fingerprint256);
    expect((await readyz(port)).status).toBe(200);
    expect(again.output()).not.toContain('challenge for');
  });

  it('gets the certificate through HTTP-01 on --acme-http-listen', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const httpPort = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort });
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'http'), ['--acme-http-listen', `127.0.0.1:${httpPort}`]);
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    expect(gateway.output()).toContain('ACME http-01 challenge for registry.rgw.test');
    expect(await eventually(async () => (await readyz(port)).status === 200, 5_000)).toBe(true);
  });

  it('while the CA is down at start: says not ready, logs that the CA is unreachable and when it tries again, and gets the certificate at a retry once the CA is up', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort() });
    await pebble.halt();
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'down-at-start'));
    await gateway.waitForOutput('cannot reach the ACME CA', { timeoutMs: 60_000 });
    const [failed] = logLines(gateway, 'ACME certificate not issued');
    expect(failed!.msg).toMatch(/cannot reach the ACME CA \(GET https:\/\/127\.0\.0\.1:\d+\/dir: connect ECONNREFUSED/);
    expect(failed!.msg).toContain('no certificate from the CA yet');
    // The first retry of an unreachable CA comes 5 s later, and the line says when.
    expect(failed!.msg).toContain(`trying again in 5 s (${failed!.retryAt as string})`);
    // retryAt is reckoned a moment before the line is written (its `time`).
    const wait = new Date(failed!.retryAt as string).getTime() - (failed!.time as number);
    expect(wait).toBeGreaterThan(4_800);
    expect(wait).toBeLessThanOrEqual(5_000);
    const ready = await readyz(port);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'unavailable', reason: `no certificate from the ACME CA yet for ${DOMAIN}` });
    expect((await servedCertificate(port, null)).issuer).toContain('stand-in');

    await pebble.resume();
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 90_000 });
    // Issued by the retry the last failure announced, not later (5 s, 15 s...: on a busy machine
    // pebble may take long enough to start that a second retry is the one).
    const failures = logLines(gateway, 'ACME certificate not issued');
    const [issued] = logLines(gateway, 'ACME certificate issued');
    const lastRetryAt = new Date(failures.at(-1)!.retryAt as string).getTime();
    expect(issued!.time as number).toBeGreaterThanOrEqual(lastRetryAt);
    expect((issued!.time as number) - lastRetryAt).toBeLessThan(30_000);
    expect(failures.every((line) => String(line.msg).includes('cannot reach the ACME CA'))).toBe(true);
    const served = await servedCertificate(port, `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`);
    expect(served.subjectAltName).toBe(`DNS:${DOMAIN}`);
    expect(await eventually(async () => (await readyz(port)).status === 200, 5_000)).toBe(true);
  });

  it('stops at once on SIGTERM while the CA cannot be reached', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort() });
    await pebble.halt();
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'down-stop'));
    await gateway.waitForOutput('cannot reach the ACME CA', { timeoutMs: 60_000 });
    const { code, ms } = await stopTimed(gateway);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
  });

  it('renews two thirds into a short lifetime, serving the new certificate to new connections while an open one goes on', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort(), certificateValiditySeconds: 24 });
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'renew'));
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    const trust = `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`;
    const first = await servedCertificate(port, trust);
    // A client that keeps its connection across the renewal.
    const open = track(await keptConnection(port, trust), async (c) => c.close());
    await gateway.waitForOutput('ACME certificate issued', { count: 2, timeoutMs: 60_000 });
    const second = await servedCertificate(port, trust);
    expect(second.fingerprint256).not.toBe(first.fingerprint256);
    expect(new Date(second.validFrom).getTime()).toBeGreaterThanOrEqual(new Date(first.validFrom).getTime());
    expect(await open.get('/healthz')).toBe(200);
  });

  it('when the CA is down at renewal time, keeps serving the current certificate and says until when; once the CA is back (having forgotten the account), registers again and renews', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    // Renewal 20 s after issuance.
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort(), certificateValiditySeconds: 30 });
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'down-at-renewal'));
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    const trust = `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`;
    const first = await servedCertificate(port, trust);
    const expiry = new Date(first.validTo).toISOString();
    await pebble.halt();

    await gateway.waitForOutput('ACME certificate not issued', { timeoutMs: 60_000 });
    const [failed] = logLines(gateway, 'ACME certificate not issued');
    expect(failed!.msg).toContain('cannot reach the ACME CA');
    expect(failed!.msg).toContain(`the current certificate keeps serving until it expires on ${expiry}`);
    expect(failed!.notAfter).toBe(expiry);
    // New connections still get the current certificate, which still verifies.
    expect((await servedCertificate(port, trust)).fingerprint256).toBe(first.fingerprint256);
    expect((await readyz(port)).status).toBe(200);

    // Back, with a new root and no accounts: the stored account URL means nothing to it.
    await pebble.resume();
    await gateway.waitForOutput('ACME certificate issued', { count: 2, timeoutMs: 90_000 });
    const [unknown] = logLines(gateway, 'the ACME CA does not know the stored account');
    expect(unknown!.reason).toMatch(/^Account https:\/\/127\.0\.0\.1:\d+\/my-account\/\w+ not found\. \(urn:ietf:params:acme:error:accountDoesNotExist\)$/);
    // Registered again at once, in the same attempt: no refusal in between.
    expect(logLines(gateway, 'ACME certificate not issued').every((line) => String(line.msg).includes('cannot reach the ACME CA'))).toBe(true);
    const renewed = await servedCertificate(port, `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`);
    expect(renewed.fingerprint256).not.toBe(first.fingerprint256);
    expect(renewed.subjectAltName).toBe(`DNS:${DOMAIN}`);
  });

  it('says why the CA refused (its problem document), stays not ready, serves a stand-in meanwhile, and stops at once on SIGTERM', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort(), domainBlocklist: ['rgw.test'] });
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'refused'));
    await gateway.waitForOutput('ACME certificate not issued', { timeoutMs: 60_000 });
    const line = gateway.output().split('\n').find((l) => l.includes('ACME certificate not issued'))!;
    expect(line).toContain('Order included an identifier for which issuance is forbidden by policy');
    expect(line).toContain('no certificate from the CA yet');
    // A refusal is asked again rarely: a minute later at first.
    expect(line).toContain('trying again in 60 s');
    expect(line).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
    const ready = await readyz(port);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'unavailable', reason: `no certificate from the ACME CA yet for ${DOMAIN}` });
    expect((await servedCertificate(port, null)).issuer).toContain('stand-in');
    const { code, ms } = await stopTimed(gateway);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
  });

  it('with --workers 2, has one process talk to the CA while either answers the validation, and both serve the certificate', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort() });
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'workers'), ['--workers', '2']);
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    expect(gateway.output().match(/ACME certificate issued/g)).toHaveLength(1);
    const trust = `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`;
    // New connections go to either process; the one that did not talk to the CA takes the stored
    // files within a moment, and from then on every connection must get the CA's certificate.
    const allTrusted = async () => {
      for (let i = 0; i < 20; i++) if (!(await servedCertificate(port, trust).then(() => true, () => false))) return false;
      return true;
    };
    expect(await eventually(allTrusted, 15_000, 200)).toBe(true);
  });

  it('gets its certificate from a pebble in -strict mode', async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort(), strict: true });
    const gateway = await serveWithAcme(track, pebble, port, join(dir, 'strict'));
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    const served = await servedCertificate(port, `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`);
    expect(served.subjectAltName).toBe(`DNS:${DOMAIN}`);
    expect((await readyz(port)).status).toBe(200);
  });

  it('with a CA that requires external account binding: issues with --acme-eab-kid and --acme-eab-hmac-key, and without them says what the CA requires and stays not ready', async () => {
    const track = cleanupAfterTest();
    const eab = { kid: 'rgw-eab-kid', hmacKey: randomBytes(32).toString('base64url') };
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort(), externalAccountBinding: eab });

    const without = await serveWithAcme(track, pebble, port, join(dir, 'eab-without'));
    await without.waitForOutput('ACME certificate not issued', { timeoutMs: 60_000 });
    const [refused] = logLines(without, 'ACME certificate not issued');
    // Pebble's problem document, detail and type.
    expect(refused!.msg).toContain("ACME server policy requires newAccount requests must include a value for the 'externalAccountBinding' field (urn:ietf:params:acme:error:externalAccountRequired)");
    expect(refused!.msg).toContain('no certificate from the CA yet');
    expect((await readyz(port)).status).toBe(503);
    expect(without.output()).not.toContain('ACME certificate issued');
    expect(await without.stop()).toBe(0);

    const withEab = await serveWithAcme(track, pebble, port, join(dir, 'eab-with'), ['--acme-eab-kid', eab.kid, '--acme-eab-hmac-key', eab.hmacKey]);
    await withEab.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    const served = await servedCertificate(port, `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`);
    expect(served.subjectAltName).toBe(`DNS:${DOMAIN}`);
    expect((await readyz(port)).status).toBe(200);
  });

  it("certs show --acme DIRECTORY, in the gateway's folder, prints the certificate it got: issuer, names, expiry and renewal", async () => {
    const track = cleanupAfterTest();
    const port = await freePort();
    const pebble = await pebbleFor(track, { tlsPort: port, httpPort: await freePort() });
    const home = join(dir, 'show');
    const gateway = await serveWithAcme(track, pebble, port, home);
    await gateway.waitForOutput('ACME certificate issued', { timeoutMs: 60_000 });
    const served = await servedCertificate(port, `${await pebble.rootPem()}\n${await pebble.intermediatePem()}`);
    const intermediate = new X509Certificate(await pebble.intermediatePem());

    const show = track(spawnCli(['certs', 'show', '--acme', pebble.directoryUrl], { cwd: home }), (p) => p.kill());
    expect(await show.exit).toBe(0);
    const out = show.stdout();
    expect(out).toMatch(/^certificate {2}certs\/acme\/127\.0\.0\.1_\d+_dir\/certificate\.crt \(the certificate of --acme https:\/\/127\.0\.0\.1:\d+\/dir\)$/m);
    expect(out).toContain(`names        DNS:${DOMAIN}\n`);
    expect(out).toContain(`issuer       ${intermediate.subject.split('\n').join(', ')}\n`);
    const notBefore = new Date(served.validFrom);
    const notAfter = new Date(served.validTo);
    expect(out).toMatch(new RegExp(`^not after {4}${notAfter.toISOString().replace(/\./g, '\\.')} \\(\\d+ days from now\\)$`, 'm'));
    const renewal = new Date(notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3);
    expect(out).toContain(`renewal      ${renewal.toISOString()} (two thirds into its lifetime; the gateway renews it by itself)\n`);
    expect(show.stderr()).toBe('');
  });
});

/** One TLS connection kept open, for requests before and after a certificate change. */
async function keptConnection(port: number, ca: string): Promise<{ get(path: string): Promise<number>; close(): void }> {
  const { Agent, request } = await import('node:https');
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca, servername: DOMAIN });
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent, servername: DOMAIN }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.end();
    });
  expect(await get('/healthz')).toBe(200);
  return { get, close: () => agent.destroy() };
}
