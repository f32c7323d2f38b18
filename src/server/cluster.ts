// --workers N: like nginx's worker_processes, N processes share the listening socket (node:cluster)
// so one gateway uses every core. The primary only supervises: it replaces a worker that dies,
// passes SIGHUP on, and on SIGTERM/SIGINT lets every worker finish its requests.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';

export interface PrimaryOptions {
  readonly workers: number;
  readonly shutdownMs: number;
  readonly log: Logger;
}

// A worker that never got to listen failed at start-up: replacing it would only fail again.
const KILL_GRACE_MS = 5_000;

export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { log } = options;
  const listening = new Set<Worker>();
  let stopping = false;

  return new Promise<number>((resolve) => {
    const finishWhenAllGone = (code: number) => {
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve(code);
    };

    const stop = (signal: NodeJS.Signals, code = 0) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, workers: Object.keys(cluster.workers ?? {}).length }, 'shutting down: workers finish in-flight requests');
      const survivors = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      for (const worker of survivors) worker.process.kill('SIGTERM');
      setTimeout(() => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      }, options.shutdownMs + KILL_GRACE_MS).unref();
      process.off('SIGHUP', hangup);
      finishWhenAllGone(code);
      cluster.on('exit', () => finishWhenAllGone(code));
    };
    const hangup = () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    };

    cluster.on('listening', (worker) => listening.add(worker));
    cluster.on('exit', (worker, code, signal) => {
      const started = listening.delete(worker);
      if (stopping) return;
      if (!started) {
        log.error({ pid: worker.process.pid, code, signal }, 'a worker failed to start; stopping');
        stop('SIGTERM', code || 1);
        return;
      }
      log.error({ pid: worker.process.pid, code, signal }, 'a worker exited; starting a replacement');
      cluster.fork();
    });
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', hangup);
    for (let i = 0; i < options.workers; i++) cluster.fork();
  });
}
