// Runs bcrypt in a worker thread so a verification (tens to hundreds of milliseconds of pure
// computation) never blocks the gateway's event loop. Plain JavaScript: Node 20 cannot load
// TypeScript in a worker, and the same file serves both the sources and dist/.
//
// Protocol: the pool sends one task at a time, { op: 'compare', password, hash } or
// { op: 'hash', password, cost }, and receives { ok: true, value } or { ok: false, message }.
// bcryptjs truncates passwords to 72 UTF-8 bytes exactly as Apache's htpasswd does, so long
// passwords set with htpasswd keep working.

import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

if (parentPort === null) throw new Error('bcrypt-worker.js must run in a worker thread');
const port = parentPort;

port.on('message', (task) => {
  try {
    // The synchronous calls are fine here: this thread does nothing else, and they skip the
    // setImmediate slicing bcryptjs' async variants add for the main thread's sake.
    const value = task.op === 'compare' ? bcrypt.compareSync(task.password, task.hash) : bcrypt.hashSync(task.password, task.cost);
    port.postMessage({ ok: true, value });
  } catch (err) {
    // Only the message travels back: the task (and so the password) never appears in an error.
    port.postMessage({ ok: false, message: err instanceof Error ? err.message : 'bcrypt failed' });
  }
});
