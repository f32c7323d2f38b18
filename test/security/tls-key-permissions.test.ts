// A private key that group or others can read is warned about at start, naming the file and the fix.
import { chmod, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeGatewayFiles } from '../helpers/gateway.js';
import { spawnCli } from '../helpers/gateway-process.js';
import type { TestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/tools.js';

let dir: string;
let pki: TestPki;
let htpasswd: string;
beforeAll(async () => {
  ({ dir, pki, htpasswd } = await makeGatewayFiles('rgw-keymode-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Starts serve, waits until it listens, stops it, and returns everything it logged. */
async function startupLog(extraArgs: string[] = []): Promise<string> {
  const port = await freePort();
  const gateway = spawnCli(['serve', '--listen', `127.0.0.1:${port}`, '--upstream', 'http://127.0.0.1:9',
    '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1', ...extraArgs]);
  const { child, exit } = gateway;
  try {
    await gateway.waitForOutput('registry-gateway listening');
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    return gateway.output();
  } finally {
    child.kill('SIGKILL');
  }
}

describe('private key permissions', () => {
  it('warns at start when group or others can read the key, naming the file and chmod 600', async () => {
    await chmod(pki.serverKey, 0o644);
    const warning = startupLog().then((log) => log.split('\n').find((l) => l.includes('readable by other users')));
    const line = JSON.parse((await warning) ?? '{}') as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, key: pki.serverKey, mode: '644' });
    expect(line.msg).toContain(`chmod 600 ${pki.serverKey}`);
  });

  it('says nothing about a key only its owner can read', async () => {
    await chmod(pki.serverKey, 0o600);
    expect(await startupLog()).not.toContain('readable by other users');
  });

  it('makes the token key of --auth token with mode 600, says so once, and warns when it is opened up later', async () => {
    const tokenKey = join(dir, 'keys', 'token.key');
    const token = ['--auth', 'token', '--token-key', tokenKey];
    const first = await startupLog(token);
    expect(first).toContain(`made the key that signs tokens, ${tokenKey} (mode 600)`);
    expect((await stat(tokenKey)).mode & 0o777).toBe(0o600);
    expect(first).not.toContain('readable by other users');
    await chmod(tokenKey, 0o640);
    const second = await startupLog(token);
    expect(second).not.toContain('made the key that signs tokens');
    const line = JSON.parse(second.split('\n').find((l) => l.includes('readable by other users')) ?? '{}') as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, key: tokenKey, mode: '640' });
  });
});
