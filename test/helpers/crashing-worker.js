// A stand-in for bcrypt-worker.js that dies, as a worker thread can (out of memory, a native
// fault), when asked to check the password 'crash'; anything else it does like the real one.
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

parentPort.on('message', (task) => {
  if (task.password === 'crash') process.exit(70);
  const value = task.op === 'compare' ? bcrypt.compareSync(task.password, task.hash) : bcrypt.hashSync(task.password, task.cost);
  parentPort.postMessage({ ok: true, value });
});
