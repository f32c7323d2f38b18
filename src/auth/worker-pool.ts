// A small pool of worker threads for every password hash, with a bounded wait queue so a flood of
// login attempts turns into fast AUTH_BUSY failures instead of unbounded memory and latency.
//
// The queue is shared fairly between clients (the caller says who asks): waiting tasks are taken
// round-robin, one client at a time, and when the queue is full a newcomer takes the place of the
// newest task of the client holding the most places. One client's burst therefore delays each
// other client by at most one task per client waiting, and never turns their logins into 503.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GatewayError } from '../errors.js';

export interface WorkerPoolOptions {
  /** Number of threads; default min(2, os.availableParallelism()). */
  size?: number;
  /** Tasks allowed to wait for a free thread; default 256. Beyond that, AUTH_BUSY. */
  maxQueue?: number;
  /** The worker script; only tests point this elsewhere. */
  workerUrl?: URL;
  /** A thread idle this long exits, giving back its ~10 MiB; default 10 s. The next task starts a new one. */
  idleMs?: number;
}

export interface WorkerPool {
  /** bcrypt comparison of a password with a bcrypt hash, off the main thread. */
  compare(password: string, hash: string, client?: string): Promise<boolean>;
  /** A new bcrypt hash of the password at the given cost, off the main thread. */
  hash(password: string, cost: number, client?: string): Promise<string>;
  /** The SHA-crypt string of the password under a `$5$`/`$6$` setting (or whole hash), off the main thread. */
  shaCrypt(password: string, setting: string, client?: string): Promise<string>;
  /** Any task; `client` is whom the queue is fair to. */
  run<T>(message: Message, client?: string): Promise<T>;
  /** Terminates every thread; waiting and running tasks fail with AUTH_WORKER_FAILED. */
  close(): Promise<void>;
  /** Threads running now (started on demand, ended after idleMs without work). */
  threads(): number;
  /** Tasks waiting for a thread. */
  queued(): number;
}

export type Message =
  | { op: 'compare'; password: string; hash: string }
  | { op: 'hash'; password: string; cost: number }
  | { op: 'sha-crypt'; password: string; setting: string }
  | { op: 'apr1'; password: string; setting: string }
  | { op: 'sha1'; password: string };

interface Task {
  message: Message;
  client: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
  /** Why the thread died, when it reported it, kept as the cause of the failure. */
  error: Error | null;
  /** Pending retirement of an idle thread. */
  idleTimer: NodeJS.Timeout | null;
  /** Set when the pool ended the thread itself, because it sat idle. */
  retired: boolean;
}

const DEFAULT_WORKER = new URL('./bcrypt-worker.js', import.meta.url);

export function createWorkerPool(options: WorkerPoolOptions = {}): WorkerPool {
  const size = Math.max(1, options.size ?? Math.min(2, availableParallelism()));
  const maxQueue = Math.max(0, options.maxQueue ?? 256);
  const workerUrl = options.workerUrl ?? DEFAULT_WORKER;
  const idleMs = Math.max(0, options.idleMs ?? 10_000);
  const slots = new Set<Slot>();
  const queue = createFairQueue();
  let closed = false;

  function submit<T>(message: Message, client = ''): Promise<T> {
    if (closed) return Promise.reject(new GatewayError('AUTH_WORKER_FAILED', 'password verification pool is closed'));
    return new Promise<T>((resolve, reject) => {
      const task: Task = { message, client, resolve: resolve as (value: unknown) => void, reject };
      const slot = idleSlot();
      if (slot !== null) return run(slot, task);
      const pushedOut = queue.push(task, maxQueue);
      pushedOut?.reject(new GatewayError('AUTH_BUSY', `more than ${maxQueue} password verifications are waiting`));
    });
  }

  function idleSlot(): Slot | null {
    for (const slot of slots) if (slot.task === null) return slot;
    return slots.size < size ? spawn() : null;
  }

  // Threads start on demand, so a pool that is never used costs nothing.
  function spawn(): Slot {
    const slot: Slot = { worker: new Worker(workerUrl), task: null, error: null, idleTimer: null, retired: false };
    slot.worker.unref();
    slot.worker.on('message', (reply: { ok: boolean; value?: unknown; message?: string }) => finish(slot, reply));
    // 'error' is always followed by 'exit'; recovery happens there, once.
    slot.worker.on('error', (err) => {
      slot.error = err;
    });
    slot.worker.on('exit', (code) => crashed(slot, code));
    slots.add(slot);
    return slot;
  }

  function run(slot: Slot, task: Task): void {
    if (slot.idleTimer !== null) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    slot.task = task;
    // An idle pool must not keep the process alive, but a pending verification must: a script
    // that awaits one and has nothing else going on would otherwise exit before the answer.
    slot.worker.ref();
    slot.worker.postMessage(task.message);
  }

  function finish(slot: Slot, reply: { ok: boolean; value?: unknown; message?: string }): void {
    const task = slot.task;
    slot.task = null;
    slot.worker.unref();
    if (task !== null) {
      if (reply.ok) task.resolve(reply.value);
      else task.reject(new GatewayError('AUTH_WORKER_FAILED', `password hashing failed in the worker: ${reply.message ?? 'unknown error'}`));
    }
    next(slot);
  }

  function next(slot: Slot): void {
    const task = queue.shift();
    if (task !== undefined) run(slot, task);
    else if (!closed) slot.idleTimer = setTimeout(() => retire(slot), idleMs).unref();
  }

  // Logins come in bursts (a docker login, then minutes of cached requests): a thread kept for
  // the next burst would cost its memory the whole time in between.
  function retire(slot: Slot): void {
    slot.idleTimer = null;
    if (slot.task !== null) return;
    slot.retired = true;
    slots.delete(slot);
    void slot.worker.terminate();
  }

  function crashed(slot: Slot, code: number): void {
    if (slot.retired) return;
    slots.delete(slot);
    const message = closed ? 'password verification pool is closed' : `password verification worker exited (code ${code})`;
    slot.task?.reject(new GatewayError('AUTH_WORKER_FAILED', message, { cause: slot.error ?? undefined }));
    slot.task = null;
    if (closed) return;
    // A replacement takes over whatever was waiting for the thread that died.
    const task = queue.shift();
    if (task !== undefined) run(spawn(), task);
  }

  async function close(): Promise<void> {
    closed = true;
    const failure = new GatewayError('AUTH_WORKER_FAILED', 'password verification pool is closed');
    for (const task of queue.drain()) task.reject(failure);
    for (const slot of slots) if (slot.idleTimer !== null) clearTimeout(slot.idleTimer);
    const workers = [...slots].map((slot) => slot.worker);
    // terminate() makes each thread emit 'exit', which fails the task it was running.
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  return {
    compare: (password, hash, client) => submit<boolean>({ op: 'compare', password, hash }, client),
    hash: (password, cost, client) => submit<string>({ op: 'hash', password, cost }, client),
    shaCrypt: (password, setting, client) => submit<string>({ op: 'sha-crypt', password, setting }, client),
    run: submit,
    close,
    threads: () => slots.size,
    queued: () => queue.size,
  };
}

interface FairQueue {
  /**
   * Queues the task; when `limit` tasks already wait, returns the one pushed out: the newest of
   * the client with the most waiting, or the newcomer itself when that is its own client.
   */
  push(task: Task, limit: number): Task | null;
  /** The next task, taking clients in turn. */
  shift(): Task | undefined;
  drain(): Task[];
  readonly size: number;
}

function createFairQueue(): FairQueue {
  // Map order is the round: a client whose task is taken goes to the back if it has more.
  const byClient = new Map<string, Task[]>();
  let size = 0;

  function largest(): [string, Task[]] | null {
    let best: [string, Task[]] | null = null;
    for (const entry of byClient) if (best === null || entry[1].length > best[1].length) best = entry;
    return best;
  }

  return {
    push(task, limit) {
      let pushedOut: Task | null = null;
      if (size >= limit) {
        const own = byClient.get(task.client)?.length ?? 0;
        const top = largest();
        if (top === null || top[1].length <= own + 1) return task;
        pushedOut = top[1].pop()!;
        size--;
        if (top[1].length === 0) byClient.delete(top[0]);
      }
      const tasks = byClient.get(task.client);
      if (tasks === undefined) byClient.set(task.client, [task]);
      else tasks.push(task);
      size++;
      return pushedOut;
    },
    shift() {
      for (const [client, tasks] of byClient) {
        const task = tasks.shift()!;
        byClient.delete(client);
        if (tasks.length > 0) byClient.set(client, tasks);
        size--;
        return task;
      }
      return undefined;
    },
    drain() {
      const all = [...byClient.values()].flat();
      byClient.clear();
      size = 0;
      return all;
    },
    get size() {
      return size;
    },
  };
}
