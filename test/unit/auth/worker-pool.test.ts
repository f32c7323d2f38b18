import { afterEach, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../src/errors.js';
import { createWorkerPool, type WorkerPool } from '../../../src/auth/worker-pool.js';
import { fixtureUser } from '../../helpers/htpasswd-fixtures.js';

const alice = fixtureUser('users.htpasswd', 'alice'); // bcrypt cost 5
const bob = fixtureUser('users.htpasswd', 'bob'); // bcrypt cost 10
const CRASHING = new URL('../../helpers/crashing-worker.js', import.meta.url);

let pool: WorkerPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('worker pool: bcrypt results', () => {
  it('accepts the password htpasswd hashed and rejects others', async () => {
    pool = createWorkerPool();
    expect(await pool.compare(alice.password, alice.hash)).toBe(true);
    expect(await pool.compare(`${alice.password}!`, alice.hash)).toBe(false);
    expect(await pool.compare('', alice.hash)).toBe(false);
  });

  it('accepts a UTF-8 password set with htpasswd -B', async () => {
    pool = createWorkerPool();
    const grace = fixtureUser('users.htpasswd', 'grace');
    expect(await pool.compare(grace.password, grace.hash)).toBe(true);
    expect(await pool.compare(grace.password.normalize('NFD'), grace.hash)).toBe(false);
  });

  it('lets a password longer than 72 bytes set with htpasswd log in, judging only its first 72 bytes as Apache does', async () => {
    pool = createWorkerPool();
    const ivan = fixtureUser('users.htpasswd', 'ivan');
    expect(Buffer.byteLength(ivan.password)).toBeGreaterThan(72);
    expect(await pool.compare(ivan.password, ivan.hash)).toBe(true);
    expect(await pool.compare(ivan.password.slice(0, 72), ivan.hash)).toBe(true);
    expect(await pool.compare(ivan.password.slice(0, 71), ivan.hash)).toBe(false);
  });

  it('makes hashes of the requested cost that verify', async () => {
    pool = createWorkerPool();
    const hash = await pool.hash('fresh password', 6);
    expect(hash).toMatch(/^\$2[aby]\$06\$/);
    expect(await pool.compare('fresh password', hash)).toBe(true);
  });
});

describe('worker pool: scheduling', () => {
  it('keeps the event loop turning while a cost-12 verification runs', async () => {
    pool = createWorkerPool({ size: 1 });
    await pool.compare('warm', alice.hash); // the thread is started before counting
    const slow = fixtureUser('cost12.htpasswd', 'slow');
    let ticks = 0;
    let done = false;
    const spin = (): void => {
      if (done) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const matched = await pool.compare(slow.password, slow.hash);
    done = true;
    expect(matched).toBe(true);
    // On the main thread the loop would turn at most a handful of times (bcryptjs yields every 100 ms).
    expect(ticks).toBeGreaterThan(100);
  });

  it('fails fast with AUTH_BUSY once the wait queue is full, and still finishes what it accepted', async () => {
    pool = createWorkerPool({ size: 1, maxQueue: 2 });
    const accepted = [1, 2, 3].map(() => pool!.compare(bob.password, bob.hash));
    const refused = await errorOf(pool.compare(bob.password, bob.hash));
    expect(isGatewayError(refused, 'AUTH_BUSY')).toBe(true);
    expect(await Promise.all(accepted)).toEqual([true, true, true]);
    expect(await pool.compare(alice.password, alice.hash)).toBe(true);
  });

  it("takes waiting clients in turn: a burst from one client delays another's task by one task, not the whole burst", async () => {
    pool = createWorkerPool({ size: 1 });
    const order: string[] = [];
    const task = (client: string) => pool!.compare(bob.password, bob.hash, client).then(() => order.push(client));
    const running = task('burst');
    const burst = Array.from({ length: 6 }, () => task('burst'));
    const other = task('other');
    await Promise.all([running, ...burst, other]);
    // The one running, then one waiting of the burst, then the other client.
    expect(order.indexOf('other')).toBeLessThanOrEqual(2);
  });

  it("when the queue is full, pushes out the newest task of the client holding the most places for another client's task", async () => {
    pool = createWorkerPool({ size: 1, maxQueue: 4 });
    const running = pool.compare(bob.password, bob.hash, 'burst');
    const burst = Array.from({ length: 4 }, () => pool!.compare(bob.password, bob.hash, 'burst'));
    const settled = Promise.allSettled(burst);
    // A fifth from the burst is refused outright; another client's task takes the burst's newest place.
    expect(isGatewayError(await errorOf(pool.compare(bob.password, bob.hash, 'burst')), 'AUTH_BUSY')).toBe(true);
    const others = [pool.compare(alice.password, alice.hash, 'a'), pool.compare(alice.password, alice.hash, 'b')];
    expect(await Promise.all(others)).toEqual([true, true]);
    expect(await running).toBe(true);
    const outcomes = await settled;
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected']);
    for (const o of outcomes) if (o.status === 'rejected') expect(isGatewayError(o.reason, 'AUTH_BUSY')).toBe(true);
  });

  it('computes apr1 and {SHA} in the thread', async () => {
    pool = createWorkerPool({ size: 1 });
    expect(await pool.run<string>({ op: 'apr1', password: 'myPassword', setting: '$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/' })).toBe('$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/');
    expect(await pool.run<string>({ op: 'sha1', password: 'password' })).toBe('{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=');
  });

  it('with no wait queue, refuses whatever finds every thread busy', async () => {
    pool = createWorkerPool({ size: 2, maxQueue: 0 });
    const running = [pool.compare(bob.password, bob.hash), pool.compare(bob.password, bob.hash)];
    expect(isGatewayError(await errorOf(pool.compare(bob.password, bob.hash)), 'AUTH_BUSY')).toBe(true);
    expect(await Promise.all(running)).toEqual([true, true]);
  });
});

describe('worker pool: idle threads', () => {
  it('ends a thread that sat idle, and starts a new one for the next verification', async () => {
    pool = createWorkerPool({ size: 2, idleMs: 200 });
    expect(pool.threads()).toBe(0);
    expect(await Promise.all([pool.compare(alice.password, alice.hash), pool.compare('wrong', alice.hash)])).toEqual([true, false]);
    expect(pool.threads()).toBe(2);
    await new Promise((r) => setTimeout(r, 600));
    expect(pool.threads()).toBe(0);
    expect(await pool.compare(alice.password, alice.hash)).toBe(true);
    expect(pool.threads()).toBe(1);
  });

  it('keeps a thread that gets work before its idle time is up', async () => {
    pool = createWorkerPool({ size: 1, idleMs: 400 });
    for (let i = 0; i < 4; i++) {
      expect(await pool.compare(alice.password, alice.hash)).toBe(true);
      await new Promise((r) => setTimeout(r, 150));
      expect(pool.threads()).toBe(1);
    }
  });
});

describe('worker pool: failures', () => {
  it('fails the task of a crashed thread with AUTH_WORKER_FAILED, and a new thread takes the queue', async () => {
    pool = createWorkerPool({ size: 1, workerUrl: CRASHING });
    const crash = errorOf(pool.compare('crash', alice.hash));
    const queued = pool.compare(alice.password, alice.hash);
    const err = await crash;
    expect(isGatewayError(err, 'AUTH_WORKER_FAILED')).toBe(true);
    expect(String((err as Error).message)).toMatch(/exited \(code 70\)/);
    expect(await queued).toBe(true);
    expect(await pool.compare('nope', alice.hash)).toBe(false);
  });

  it('fails running, waiting and later tasks with AUTH_WORKER_FAILED once closed', async () => {
    pool = createWorkerPool({ size: 1 });
    const running = errorOf(pool.compare(bob.password, bob.hash));
    const waiting = errorOf(pool.compare(bob.password, bob.hash));
    await pool.close();
    for (const err of [await running, await waiting, await errorOf(pool.compare(alice.password, alice.hash))]) {
      expect(isGatewayError(err, 'AUTH_WORKER_FAILED')).toBe(true);
    }
  });

  it('turns a bcrypt error inside the thread into AUTH_WORKER_FAILED', async () => {
    pool = createWorkerPool({ size: 1 });
    const bogus = `$2q$05$${'a'.repeat(53)}`; // 60 characters, but no bcrypt version bcryptjs knows
    expect(isGatewayError(await errorOf(pool.compare('pw', bogus)), 'AUTH_WORKER_FAILED')).toBe(true);
    expect(await pool.compare(alice.password, alice.hash)).toBe(true);
  });

  it('never puts the password in an error', async () => {
    const password = 'hunter2-do-not-log';
    pool = createWorkerPool({ size: 1, maxQueue: 0 });
    const busy = pool.compare(bob.password, bob.hash);
    const errors = [await errorOf(pool.compare(password, bob.hash))];
    await busy;
    errors.push(await errorOf(pool.compare(password, `$2q$05$${'a'.repeat(53)}`)));
    await pool.close();
    errors.push(await errorOf(pool.compare(password, bob.hash)));
    expect(errors.map((err) => (err as { code?: string }).code)).toEqual(['AUTH_BUSY', 'AUTH_WORKER_FAILED', 'AUTH_WORKER_FAILED']);
    for (const err of errors) {
      const e = err as Error & { cause?: unknown; problems?: unknown };
      expect(`${e.message} ${e.stack} ${String(e.cause)} ${JSON.stringify(e.problems)}`).not.toContain(password);
    }
  });
});
