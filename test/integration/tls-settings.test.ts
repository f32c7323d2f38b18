// What the listener negotiates over ALPN, checked with the real openssl client. Protocols, cipher
// suites and HSTS: test/security/tls-protocols.test.ts.
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
  it('offers HTTP/1.1 over ALPN and not h2', async () => {
    expect((await handshake(['-alpn', 'h2,http/1.1'])).output).toContain('ALPN protocol: http/1.1');
    expect((await handshake(['-alpn', 'h2'])).output).not.toContain('ALPN protocol: h2');
  });
});
