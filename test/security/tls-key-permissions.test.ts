// A private key that group or others can read is warned about at start, naming the file and the fix.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeHtpasswd } from '../helpers/htpasswd.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/tools.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

let dir: string;
let pki: TestPki;
let htpasswd: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-keymode-'));
  pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
  htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 5 }]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Starts serve, waits until it listens, stops it, and returns everything it logged. */
async function startupLog(): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--upstream', 'http://127.0.0.1:9',
    '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd, '--workers', '1'], { env: { PATH: process.env.PATH ?? '' } });
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    while (!log.includes('registry-gateway listening')) {
      if (child.exitCode !== null) throw new Error(log);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    return log;
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
});
