// `registry-gateway healthcheck`, what a container's HEALTHCHECK runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { spawnCli } from '../helpers/gateway-process.js';
import { freePort } from '../helpers/tools.js';

async function healthcheck(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const cli = spawnCli(['healthcheck', ...args], { env });
  const code = await cli.exit;
  return { code, stderr: cli.stderr() };
}

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.stop());

describe('registry-gateway healthcheck', () => {
  it('exits 0 while the gateway is ready, finding the port in GATEWAY_LISTEN', async () => {
    expect(await healthcheck([], { GATEWAY_LISTEN: `0.0.0.0:${stack.gateway.port}` })).toEqual({ code: 0, stderr: '' });
  });

  it('exits 1 naming the reason when the upstream is down, while /healthz still passes', async () => {
    await stack.registry.halt();
    try {
      const ready = await healthcheck(['--url', `https://127.0.0.1:${stack.gateway.port}/readyz`]);
      expect(ready.code).toBe(1);
      expect(ready.stderr).toMatch(/answered 503 .*unreachable/);
      expect((await healthcheck(['--url', `https://127.0.0.1:${stack.gateway.port}/healthz`])).code).toBe(0);
    } finally {
      await stack.registry.start();
    }
  });

  it('exits 1 when nothing listens', async () => {
    const port = await freePort();
    const result = await healthcheck(['--url', `https://127.0.0.1:${port}/readyz`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ECONNREFUSED');
  });
});
