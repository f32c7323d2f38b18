// The gateway as its own process (dist/cli/main.js, so build first), for tests that look at what a
// process holds: its open descriptors and its memory, from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { basicAuthorization } from './gateway.js';
import { writeHtpasswd } from './htpasswd.js';
import { makeTestPki, type TestPki } from './pki.js';
import { freePort } from './tools.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

export interface SpawnedGateway {
  readonly port: number;
  readonly pid: number;
  readonly pki: TestPki;
  /** `Basic ...` for alice. */
  readonly authorization: string;
  /** Open file descriptors of the process (sockets included). */
  fdCount(): number;
  /** Resident memory of the process, in bytes. */
  rssBytes(): number;
  /** Whether the process is still running. */
  alive(): boolean;
  /** What the process wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

/** A one-process gateway (user alice, password `alice-secret`) in front of `upstreamUrl`. */
export async function spawnGateway(upstreamUrl: string, extraArgs: string[] = []): Promise<SpawnedGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'rgw-proc-'));
  const pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
  const htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 5 }]);
  const port = await freePort();
  const args = [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--upstream', upstreamUrl, '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey,
    '--htpasswd', htpasswd, '--workers', '1', '--log-level', 'fatal', ...extraArgs];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilServing(port, pki.caPem, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    pid: child.pid!,
    pki,
    authorization: basicAuthorization('alice', 'alice-secret'),
    fdCount: () => readdirSync(`/proc/${child.pid}/fd`).length,
    rssBytes: () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024,
    alive: () => child.exitCode === null && child.signalCode === null,
    stderr: () => stderr,
    stop,
  };
}

async function waitUntilServing(port: number, ca: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}: ${stderr()}`);
    if (await answersHealthz(port, ca)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the gateway did not serve /healthz within 10 s: ${stderr()}`);
}

function answersHealthz(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('close', () => resolve(text.startsWith('HTTP/1.1 200')));
    socket.on('error', () => resolve(false));
  });
}
