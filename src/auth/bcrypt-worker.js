// Runs every password hash (bcrypt, SHA-crypt, apr1, {SHA}) in a worker thread so a verification
// (microseconds to hundreds of milliseconds of pure computation, on input a stranger chose) never
// blocks the gateway's event loop. Plain JavaScript: Node 20 cannot load
// TypeScript in a worker, and the same file serves both the sources and dist/.
//
// Protocol: the pool sends one task at a time, { op: 'compare', password, hash },
// { op: 'hash', password, cost }, { op: 'sha-crypt', password, setting }, { op: 'apr1', password,
// setting } or { op: 'sha1', password }, and receives
// { ok: true, value } or { ok: false, message }.
// bcryptjs truncates passwords to 72 UTF-8 bytes exactly as Apache's htpasswd does, so long
// passwords set with htpasswd keep working.

import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { apr1, apr1Salt, sha1Hash } from './apr1.js';
import { shaCrypt } from './sha-crypt.js';

if (parentPort === null) throw new Error('bcrypt-worker.js must run in a worker thread');
const port = parentPort;
lowerThreadPriority();

port.on('message', (task) => {
  try {
    // The synchronous calls are fine here: this thread does nothing else, and they skip the
    // setImmediate slicing bcryptjs' async variants add for the main thread's sake.
    const value = run(task);
    port.postMessage({ ok: true, value });
  } catch (err) {
    // Only the message travels back: the task (and so the password) never appears in an error.
    port.postMessage({ ok: false, message: err instanceof Error ? err.message : 'password hashing failed' });
  }
});

function run(task) {
  switch (task.op) {
    case 'compare':
      return bcrypt.compareSync(task.password, task.hash);
    case 'hash':
      return bcrypt.hashSync(task.password, task.cost);
    case 'sha-crypt':
      return shaCrypt(task.password, task.setting);
    case 'apr1':
      return apr1(task.password, apr1Salt(task.setting));
    case 'sha1':
      return sha1Hash(task.password);
    default:
      throw new Error(`unknown task ${String(task.op)}`);
  }
}

/**
 * A flood of logins must not slow what the main thread does (health checks, TLS handshakes,
 * requests already authenticated): on Linux, setpriority on a thread id renices just that thread.
 * Elsewhere, or if refused, the thread keeps the process's priority.
 */
function lowerThreadPriority() {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, 10);
  } catch {
    // not Linux, or not allowed
  }
}
