// What the listener negotiates, per protocol and per cipher, checked with the real openssl client
// against two gateways: one with an ECDSA certificate (the test PKI) and one with the RSA
// certificate the gateway makes for itself. Only TLS 1.2 and 1.3; on TLS 1.2 only ECDHE with
// AES-GCM or ChaCha20-Poly1305; Strict-Transport-Security on every answer, errors included.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewaySetup } from '../../src/server/resources.js';
import { startGateway } from '../../src/server/gateway.js';
import { createCa, createServerCertificate } from '../../src/tls/certificates.js';
import { startTestStack, type RunningGateway, type TestStack } from '../helpers/gateway.js';
import { requireTool, run } from '../helpers/tools.js';

interface Target {
  readonly port: number;
  /** PEM file of the CA that signed the gateway's certificate. */
  readonly caFile: string;
  /** `ECDSA` or `RSA`: the authentication of TLS 1.2 suites this certificate can serve. */
  readonly auth: string;
}

let stack: TestStack;
let rsaDir: string;
let rsaGateway: RunningGateway;
let ecdsa: Target;
let rsa: Target;
let rsaCaPem: string;

beforeAll(async () => {
  stack = await startTestStack();
  ecdsa = { port: stack.gateway.port, caFile: stack.pki.caCert, auth: 'ECDSA' };
  // The certificate a user gets by default (RSA, from the gateway's own CA), in front of an
  // upstream that is not there, so the gateway's own 502 can be checked too.
  rsaDir = await mkdtemp(join(tmpdir(), 'rgw-tls-rsa-'));
  const ca = createCa();
  const server = createServerCertificate(ca, { hosts: ['localhost'], ips: ['127.0.0.1'] });
  const files = { ca: join(rsaDir, 'ca.crt'), cert: join(rsaDir, 'server.crt'), key: join(rsaDir, 'server.key') };
  await writeFile(files.ca, ca.cert);
  rsaCaPem = ca.cert;
  await writeFile(files.cert, server.cert);
  await writeFile(files.key, server.key, { mode: 0o600 });
  const setup = await loadGatewaySetup(
    ['--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--tls-cert', files.cert, '--tls-key', files.key,
      '--htpasswd', stack.htpasswdFile, '--log-level', 'silent', '--workers', '1'],
    {},
  );
  rsaGateway = await startGateway(setup);
  rsa = { port: rsaGateway.port, caFile: files.ca, auth: 'RSA' };
}, 120_000);

afterAll(async () => {
  await rsaGateway?.close();
  await stack?.stop();
  if (rsaDir) await rm(rsaDir, { recursive: true, force: true });
});

interface Handshake {
  /** Handshake completed and the certificate verified against the test CA. */
  readonly ok: boolean;
  readonly output: string;
}

async function handshake(target: Target, args: readonly string[]): Promise<Handshake> {
  const openssl = requireTool('openssl');
  const result = await run(
    openssl,
    ['s_client', '-connect', `127.0.0.1:${target.port}`, '-servername', 'localhost', '-CAfile', target.caFile, '-verify_return_error', ...args],
    { input: '', timeoutMs: 20_000 },
  );
  const output = result.stdout + result.stderr;
  return { ok: result.code === 0 && /Verify return code: 0 \(ok\)/.test(output), output };
}

/** Runs `task` over every item, `width` at a time: hundreds of handshakes in a few seconds. */
async function inBatches<T, R>(items: readonly T[], width: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  return results;
}

interface CipherSpec {
  readonly name: string;
  readonly kx: string;
  readonly au: string;
  readonly enc: string;
}

/** Every cipher suite this openssl knows that TLS 1.2 can negotiate (all but the TLS 1.3 ones). */
async function tls12Ciphers(): Promise<CipherSpec[]> {
  const openssl = requireTool('openssl');
  const listed = await run(openssl, ['ciphers', '-v', 'ALL:COMPLEMENTOFALL:@SECLEVEL=0']);
  return listed.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && f[1] !== 'TLSv1.3')
    .map((f) => ({ name: f[0]!, kx: field(f, 'Kx'), au: field(f, 'Au'), enc: field(f, 'Enc') }));
}

function field(fields: readonly string[], key: string): string {
  return fields.find((f) => f.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';
}

/** The policy: forward-secret ECDHE, authenticated by the certificate's key, with an AEAD of AES-GCM or ChaCha20-Poly1305. */
function allowedOnTls12(cipher: CipherSpec, certAuth: string): boolean {
  return cipher.kx === 'ECDH' && cipher.au === certAuth && /^(AESGCM\(|CHACHA20\/POLY1305)/.test(cipher.enc);
}

/** A minimal ClientHello at `version` (0x0300 SSLv3, 0x0303 TLS 1.2), for protocols openssl no longer speaks. */
function clientHello(version: number): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), u16(body.length), body]);
  const list16 = (values: number[]) => Buffer.concat([u16(values.length * 2), ...values.map(u16)]);
  // ECDHE-ECDSA/RSA with AES-GCM and AES-CBC, RSA key transport, 3DES: anything an old client offers.
  const suites = list16([0xc02b, 0xc02f, 0xc009, 0xc013, 0xc00a, 0xc014, 0x002f, 0x0035, 0x000a, 0x00ff]);
  const extensions = Buffer.concat([
    ext(0x000a, list16([0x001d, 0x0017])), // supported groups: x25519, P-256
    ext(0x000b, Buffer.from([1, 0])), // EC point formats: uncompressed
    ext(0x000d, list16([0x0403, 0x0804, 0x0401, 0x0203, 0x0201])), // signature algorithms
  ]);
  const body = Buffer.concat([u16(version), randomBytes(32), Buffer.from([0]), suites, Buffer.from([1, 0]), u16(extensions.length), extensions]);
  const handshakeMsg = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, version >> 8, version & 0xff]), u16(handshakeMsg.length), handshakeMsg]);
}

/** Sends a raw ClientHello; true when the gateway answers with a ServerHello (handshake record, type 2). */
function answersWithServerHello(port: number, version: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const done = () => {
      socket.destroy();
      resolve(received.length >= 6 && received[0] === 0x16 && received[5] === 0x02);
    };
    const timer = setTimeout(done, 5_000);
    socket.on('connect', () => socket.write(clientHello(version)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 6) {
        clearTimeout(timer);
        done();
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      done();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
  });
}

describe('TLS protocols', () => {
  it('refuses SSLv3: a ClientHello offering only SSLv3 gets no ServerHello', async () => {
    for (const target of [ecdsa, rsa]) {
      // The same hello at TLS 1.2 is answered, so the probe itself can tell.
      expect(await answersWithServerHello(target.port, 0x0303), `${target.auth} control`).toBe(true);
      expect(await answersWithServerHello(target.port, 0x0300), target.auth).toBe(false);
    }
  });

  it('refuses TLS 1.0 and TLS 1.1, even from a client that would accept any cipher', async () => {
    for (const target of [ecdsa, rsa]) {
      for (const version of ['-tls1', '-tls1_1']) {
        const old = await handshake(target, [version, '-cipher', 'ALL:COMPLEMENTOFALL:@SECLEVEL=0']);
        expect(old.ok, `${target.auth} ${version}`).toBe(false);
        expect(old.output, `${target.auth} ${version}`).toMatch(/alert protocol version|no protocols available|unsupported protocol|wrong version number/i);
      }
    }
  });

  it('accepts TLS 1.2 and TLS 1.3 with a verified certificate', async () => {
    for (const target of [ecdsa, rsa]) {
      const v12 = await handshake(target, ['-tls1_2']);
      expect(v12.ok, `${target.auth} TLS 1.2\n${v12.output}`).toBe(true);
      expect(v12.output).toMatch(/Protocol *: TLSv1\.2|New, TLSv1\.2/);
      const v13 = await handshake(target, ['-tls1_3']);
      expect(v13.ok, `${target.auth} TLS 1.3\n${v13.output}`).toBe(true);
      expect(v13.output).toMatch(/New, TLSv1\.3/);
    }
  });
});

describe('TLS cipher suites', () => {
  // Some 300 openssl processes, 12 at a time: they outran the default 30 s on a 2-core machine
  // that another test run shared. The time is not what is checked, and each handshake has its
  // own 20 s limit (a hung one counts as refused and fails the comparison).
  it('on TLS 1.2, accepts exactly the ECDHE suites with AES-GCM or ChaCha20-Poly1305 of every cipher openssl knows', async () => {
    const ciphers = await tls12Ciphers();
    // openssl 3 knows well over a hundred; a short list would mean the listing went wrong.
    expect(ciphers.length).toBeGreaterThan(100);
    for (const target of [ecdsa, rsa]) {
      const results = await inBatches(ciphers, 12, async (cipher) => {
        const result = await handshake(target, ['-tls1_2', '-cipher', `${cipher.name}:@SECLEVEL=0`]);
        return { cipher, accepted: result.ok && result.output.includes(`Cipher is ${cipher.name}`) };
      });
      const accepted = results.filter((r) => r.accepted).map((r) => r.cipher.name).sort();
      const allowed = ciphers.filter((c) => allowedOnTls12(c, target.auth)).map((c) => c.name).sort();
      expect(accepted, target.auth).toEqual(allowed);
      // AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, each with this certificate's key type.
      expect(allowed, target.auth).toHaveLength(3);
    }
  }, 120_000);

  it('on TLS 1.3, accepts each of the three AEAD suites', async () => {
    for (const target of [ecdsa, rsa]) {
      for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
        const result = await handshake(target, ['-tls1_3', '-ciphersuites', suite]);
        expect(result.ok, `${target.auth} ${suite}`).toBe(true);
        expect(result.output).toContain(`Cipher is ${suite}`);
      }
    }
  });

  it('on TLS 1.3, refuses the CCM suites', async () => {
    for (const suite of ['TLS_AES_128_CCM_SHA256', 'TLS_AES_128_CCM_8_SHA256']) {
      const result = await handshake(ecdsa, ['-tls1_3', '-ciphersuites', suite]);
      expect(result.ok, suite).toBe(false);
    }
  });
});

describe('Strict-Transport-Security', () => {
  const HSTS = 'max-age=31536000';

  it('is on health answers, 401 challenges, 404s and refused paths', async () => {
    const answers = {
      healthz: await stack.request('/healthz', { auth: false }),
      readyz: await stack.request('/readyz', { auth: false }),
      registry: await stack.request('/v2/'),
      challenge: await stack.request('/v2/', { auth: false }),
      notFound: await stack.request('/nothing-here', { auth: false }),
      badPath: await stack.request('/v2/a%2Fb/manifests/1'),
    };
    expect(Object.fromEntries(Object.entries(answers).map(([k, r]) => [k, r.status]))).toEqual({
      healthz: 200, readyz: 200, registry: 200, challenge: 401, notFound: 404, badPath: 400,
    });
    for (const [name, answer] of Object.entries(answers)) expect(answer.headers['strict-transport-security'], name).toBe(HSTS);
  });

  it('is on the gateway’s own 502 when the registry is unreachable', async () => {
    const answer = await new Promise<{ status: number; hsts: unknown }>((resolve, reject) => {
      const req = httpsRequest(
        `${rsaGateway.url}/v2/`,
        { headers: { authorization: stack.authorization() }, ca: rsaCaPem, servername: 'localhost', agent: false },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] });
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(answer).toEqual({ status: 502, hsts: HSTS });
  });
});
