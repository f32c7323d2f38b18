// --workers N: like nginx's worker_processes, N processes serve the port so one gateway uses every
// core. The primary is one of them: it listens, forks N-1 workers (node:cluster) and hands each
// its listening socket, so every process accepts from the same queue and a gateway is exactly N
// processes, not N plus a supervisor (each Node process costs tens of MiB). The primary also
// replaces a worker that dies, passes SIGHUP on, and on SIGTERM/SIGINT lets every worker finish.

import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:net';
import type { Logger } from 'pino';

const READY = 'registry-gateway:ready';
const LISTEN = 'registry-gateway:listen';
const LISTENING = 'registry-gateway:listening';

interface Message {
  readonly type?: unknown;
}

function isMessage(value: unknown, type: string): boolean {
  return typeof value === 'object' && value !== null && (value as Message).type === type;
}

export interface SupervisorOptions {
  /** Workers besides the primary. */
  readonly workers: number;
  /** The primary's listening server, whose socket the workers share. */
  readonly server: Server;
  readonly shutdownMs: number;
  readonly log: Logger;
}

export interface Supervisor {
  /** Passes SIGHUP to every worker. */
  hangup(): void;
  /** SIGTERM to every worker; resolves once all have exited (SIGKILL after the grace time). */
  stop(): Promise<void>;
}

const KILL_GRACE_MS = 5_000;

export function superviseWorkers(options: SupervisorOptions): Supervisor {
  const { log } = options;
  const started = new WeakSet<Worker>();
  let stopping = false;

  const fork = (): void => {
    const worker = cluster.fork();
    worker.on('message', (message: unknown) => {
      // Sent only on request: a message arriving before the worker's module has loaded is lost.
      if (isMessage(message, READY)) worker.send({ type: LISTEN }, options.server);
      else if (isMessage(message, LISTENING)) started.add(worker);
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      if (!started.has(worker)) {
        // Replacing a worker that could not even start would only fail again, in a loop.
        log.error({ pid: worker.process.pid, code, signal }, 'a worker failed to start; serving with the other processes');
        return;
      }
      log.error({ pid: worker.process.pid, code, signal }, 'a worker exited; starting a replacement');
      fork();
    });
  };
  for (let i = 0; i < options.workers; i++) fork();

  const alive = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());

  return {
    hangup() {
      for (const worker of alive()) worker.process.kill('SIGHUP');
    },
    async stop() {
      stopping = true;
      const workers = alive();
      const exited = workers.map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
      for (const worker of workers) worker.process.kill('SIGTERM');
      const killer = setTimeout(() => {
        for (const worker of alive()) worker.process.kill('SIGKILL');
      }, options.shutdownMs + KILL_GRACE_MS);
      killer.unref();
      await Promise.all(exited);
      clearTimeout(killer);
    },
  };
}

/** In a worker: asks the primary for the listening socket and resolves with it. */
export function receiveListeningSocket(): Promise<Server> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown, handle: unknown) => {
      if (!isMessage(message, LISTEN) || handle === undefined) return;
      process.off('message', onMessage);
      resolve(handle as Server);
    };
    process.on('message', onMessage);
    process.send?.({ type: READY });
  });
}

/** In a worker: tells the primary it serves, so a later death is replaced rather than given up on. */
export function reportListening(): void {
  process.send?.({ type: LISTENING });
}
