// What the listener negotiates, checked with the real openssl client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { requireTool, run } from '../helpers/tools.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.stop());

async function handshake(args: string[]): Promise<{ ok: boolean; output: string }> {
  const openssl = requireTool('openssl');
  const result = await run(
    openssl,
    ['s_client', '-connect', `127.0.0.1:${stack.gateway.port}`, '-servername', 'localhost', '-CAfile', stack.pki.caCert, '-verify_return_error', ...args],
    { input: '', timeoutMs: 10_000 },
  );
  const output = result.stdout + result.stderr;
  return { ok: result.code === 0 && /Verify return code: 0 \(ok\)/.test(output), output };
}

describe('TLS settings', () => {
  it('speaks TLS 1.3 and TLS 1.2 with forward-secret AEAD suites', async () => {
    const v13 = await handshake(['-tls1_3']);
    expect(v13.ok).toBe(true);
    expect(v13.output).toMatch(/TLSv1\.3/);
    for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
      const v12 = await handshake(['-tls1_2', '-cipher', cipher]);
      expect(v12.ok, cipher).toBe(true);
      expect(v12.output).toContain(`Cipher is ${cipher}`);
    }
  });

  it('refuses TLS 1.1 and 1.0', async () => {
    for (const version of ['-tls1_1', '-tls1']) {
      const old = await handshake([version, '-cipher', 'DEFAULT@SECLEVEL=0']);
      expect(old.ok, version).toBe(false);
    }
  });

  it('refuses CBC and non-forward-secret suites on TLS 1.2', async () => {
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES128-SHA', 'AES128-GCM-SHA256']) {
      const weak = await handshake(['-tls1_2', '-cipher', cipher]);
      expect(weak.ok, cipher).toBe(false);
    }
  });

  it('offers HTTP/1.1 over ALPN and not h2', async () => {
    expect((await handshake(['-alpn', 'h2,http/1.1'])).output).toContain('ALPN protocol: http/1.1');
    expect((await handshake(['-alpn', 'h2'])).output).not.toContain('ALPN protocol: h2');
  });

  it('sends Strict-Transport-Security by default', async () => {
    expect((await stack.request('/healthz')).headers['strict-transport-security']).toBe('max-age=31536000');
  });
});
