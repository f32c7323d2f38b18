// containerd for tests, with `ctr` as its client: a containerd of the test's own (root, state and
// socket in a folder of the test, the CRI plugin off), never the machine's or the Docker engine's.
// ctr does nothing without a running containerd (it waits for the socket), so the test starts one;
// a missing containerd or ctr is an error naming the Debian package, never a skipped test. Images
// are unpacked with the native snapshotter (plain copies, no overlay mounts).
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run, runOk, type RunResult } from './tools.js';
import { eventually } from './wait.js';

export interface Containerd {
  /** The containerd socket (`ctr --address`). */
  readonly address: string;
  /** The namespace every ctr command of the test works in. */
  readonly namespace: string;
  /** Runs `ctr --address ADDRESS --namespace NS ARGS...`; a non-zero exit is returned, not thrown. */
  ctr(args: string[]): Promise<RunResult>;
  /** Like ctr(), but throws with its output on a non-zero exit. */
  ctrOk(args: string[]): Promise<RunResult>;
  /** What containerd logged so far. */
  log(): Promise<string>;
  /** Stops containerd (SIGTERM, SIGKILL after 10 s) and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** Starts containerd with everything it keeps under `dir` (created); resolves once `ctr version` answers. */
export async function startContainerd(dir: string, namespace = 'rgw-test'): Promise<Containerd> {
  const containerd = requireTool('containerd');
  const ctr = requireTool('ctr');
  await mkdir(dir, { recursive: true });
  const address = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  const logFile = join(dir, 'containerd.log');
  await writeFile(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(address)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  const out = openSync(logFile, 'a');
  const child = spawn(containerd, ['--config', config], { stdio: ['ignore', out, out] });
  closeSync(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const log = () => readFile(logFile, 'utf8').catch(() => '');
  const options = { timeoutMs: 180_000 };
  const args = (a: string[]) => ['--address', address, '--namespace', namespace, ...a];

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (alive()) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    // Nothing should stay mounted (native snapshots are copies), but a mount left would stop rm.
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    const mounts = mountinfo.split('\n').map((line) => line.split(' ')[4] ?? '').filter((m) => m.startsWith(`${dir}/`));
    for (const mount of mounts.sort().reverse()) await run('umount', ['-l', mount]);
    await rm(dir, { recursive: true, force: true });
  };

  // ctr version fails (after its own dial timeout) until the socket answers.
  const ready = await eventually(async () => !alive() || (await run(ctr, ['--address', address, '--connect-timeout', '2s', 'version'], { timeoutMs: 10_000 })).code === 0, 30_000, 200);
  if (!ready || !alive()) {
    const text = await log();
    await stop();
    throw new Error(`containerd did not answer on ${address} within 30 s:\n${text}`);
  }
  return {
    address,
    namespace,
    ctr: (a) => run(ctr, args(a), options),
    ctrOk: (a) => runOk(ctr, args(a), options),
    log,
    stop,
  };
}
