// With --workers every process keeps its own manifest copies, so a push through one process must
// drop the copies in all: a worker tells the primary, which drops its own and tells every other.
//
// A change the registry has answered is announced with an id, and every process confirms it has
// dropped the copies: the process relaying the answer holds it until all have (worker -> primary
// -> other workers -> primary -> worker), so a client that heard its push succeeded gets the new
// manifest from whichever process serves its next pull. The wait is bounded: a process that does
// not confirm in time (stuck, or exiting) is given up on with a warning, and the answer goes out.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { ManifestCache } from '../proxy/manifest-cache.js';

const CHANGED = 'registry-gateway:manifests-changed';
const DROPPED = 'registry-gateway:manifests-dropped';
// Sent by a worker once it drops copies on CHANGED: only such workers are waited for (one still
// starting has no copies, and would never confirm).
const SUBSCRIBED = 'registry-gateway:manifests-subscribed';

/** How long a change's answer waits for the other processes (they confirm within a millisecond or two). */
export const DROP_WAIT_MS = 2_000;

interface ChangeMessage {
  readonly type: typeof CHANGED;
  readonly repository: string;
  /** Present when the sender waits for a DROPPED with the same id. */
  readonly id?: number;
}

interface DroppedMessage {
  readonly type: typeof DROPPED;
  readonly id: number;
}

function isChange(message: unknown): message is ChangeMessage {
  const m = message as Partial<ChangeMessage> | null;
  return typeof m === 'object' && m !== null && m.type === CHANGED && typeof m.repository === 'string' && (m.id === undefined || typeof m.id === 'number');
}

function isDropped(message: unknown): message is DroppedMessage {
  const m = message as Partial<DroppedMessage> | null;
  return typeof m === 'object' && m !== null && m.type === DROPPED && typeof m.id === 'number';
}

function isSubscribed(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === SUBSCRIBED;
}

export interface ManifestSync {
  /**
   * Tells the gateway's other processes that `repository` changed (this process has dropped its
   * own copies already); `dropped`, when given, runs once they all confirm, or after the wait.
   */
  announce(repository: string, dropped?: () => void): void;
  /** Drops the copies of repositories other processes report changed; returns how to stop (answering every wait still open). */
  receive(cache: ManifestCache): () => void;
}

export interface ManifestSyncOptions {
  readonly log: Logger;
  readonly waitMs?: number;
}

/** A change waiting for confirmations, by id. */
interface Wait {
  readonly done: () => void;
  readonly timer: NodeJS.Timeout;
}

/** In the primary, which workers are yet to confirm. */
interface PrimaryWait extends Wait {
  readonly waiting: Set<Worker>;
}

function finish(waits: Map<number, Wait>, id: number): void {
  const wait = waits.get(id);
  if (!wait) return;
  waits.delete(id);
  clearTimeout(wait.timer);
  wait.done();
}

function finishAll(waits: Map<number, Wait>): void {
  for (const id of [...waits.keys()]) finish(waits, id);
}

export function createManifestSync(options: ManifestSyncOptions): ManifestSync {
  return cluster.isWorker ? workerSync(options) : primarySync(options);
}

function workerSync({ log, waitMs = DROP_WAIT_MS }: ManifestSyncOptions): ManifestSync {
  const waits = new Map<number, Wait>();
  let nextId = 0;
  const send = (message: ChangeMessage | DroppedMessage | { type: typeof SUBSCRIBED }): boolean => {
    if (!process.connected) return false;
    try {
      process.send?.(message);
      return true;
    } catch {
      return false; // the channel closed right now: the primary is going away
    }
  };

  return {
    announce(repository, dropped) {
      if (dropped === undefined) {
        send({ type: CHANGED, repository });
        return;
      }
      const id = ++nextId;
      if (!send({ type: CHANGED, repository, id })) {
        dropped(); // no primary, so no other process to wait for
        return;
      }
      const timer = setTimeout(() => {
        log.warn({ repository, waitedMs: waitMs }, 'answering a change before every process confirmed dropping its manifest copies');
        finish(waits, id);
      }, waitMs);
      waits.set(id, { done: dropped, timer });
    },
    receive(cache) {
      const onMessage = (message: unknown): void => {
        if (isChange(message)) {
          cache.drop(message.repository);
          if (message.id !== undefined) send({ type: DROPPED, id: message.id });
        } else if (isDropped(message)) {
          finish(waits, message.id);
        }
      };
      process.on('message', onMessage);
      send({ type: SUBSCRIBED });
      return () => {
        process.off('message', onMessage);
        finishAll(waits);
      };
    },
  };
}

function primarySync({ log, waitMs = DROP_WAIT_MS }: ManifestSyncOptions): ManifestSync {
  const subscribers = new Set<Worker>();
  const waits = new Map<number, PrimaryWait>();
  let nextId = 0;

  const confirmed = (id: number, worker: Worker): void => {
    const wait = waits.get(id);
    if (!wait) return;
    wait.waiting.delete(worker);
    if (wait.waiting.size === 0) finish(waits, id);
  };
  const send = (worker: Worker, message: ChangeMessage | DroppedMessage): boolean => {
    if (!worker.isConnected()) return false;
    try {
      worker.send(message);
      return true;
    } catch {
      return false; // exiting right now: its copies go with it
    }
  };
  /** Tells every subscribed worker but `except`; `dropped` runs once those told have confirmed, or after `wait` ms. */
  const tell = (repository: string, except: Worker | null, dropped?: () => void, wait = waitMs): void => {
    if (dropped === undefined) {
      for (const worker of subscribers) if (worker !== except) send(worker, { type: CHANGED, repository });
      return;
    }
    const id = ++nextId;
    const waiting = new Set<Worker>();
    for (const worker of subscribers) {
      if (worker !== except && send(worker, { type: CHANGED, repository, id })) waiting.add(worker);
    }
    if (waiting.size === 0) {
      dropped();
      return;
    }
    const timer = setTimeout(() => {
      log.warn({ repository, waitedMs: wait, pids: [...waiting].map((w) => w.process.pid) }, 'a worker did not confirm dropping its manifest copies in time');
      finish(waits, id);
    }, wait);
    waits.set(id, { waiting, done: dropped, timer });
  };

  return {
    announce(repository, dropped) {
      tell(repository, null, dropped);
    },
    receive(cache) {
      const onMessage = (worker: Worker, message: unknown): void => {
        if (isChange(message)) {
          cache.drop(message.repository);
          const { id } = message;
          if (id === undefined) tell(message.repository, worker);
          // Shorter than the worker's own wait, so the worker hears back (and the log names the
          // process that did not confirm) before it gives up.
          else tell(message.repository, worker, () => send(worker, { type: DROPPED, id }), (waitMs * 3) / 4);
        } else if (isDropped(message)) {
          confirmed(message.id, worker);
        } else if (isSubscribed(message)) {
          subscribers.add(worker);
        }
      };
      // A worker gone has no copies left to drop.
      const onGone = (worker: Worker): void => {
        subscribers.delete(worker);
        for (const id of [...waits.keys()]) confirmed(id, worker);
      };
      cluster.on('message', onMessage);
      cluster.on('disconnect', onGone);
      cluster.on('exit', onGone);
      return () => {
        cluster.off('message', onMessage);
        cluster.off('disconnect', onGone);
        cluster.off('exit', onGone);
        finishAll(waits);
      };
    },
  };
}
