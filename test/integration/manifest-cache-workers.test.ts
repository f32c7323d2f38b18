// A --workers gateway keeps a manifest cache in every process: a push through one process must
// reach the copies in all of them, or a pull served by another process would get the old image;
// and it must have reached them before the pusher hears the push succeeded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess, type ProcessResponse } from '../helpers/gateway-process.js';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { openTlsConnection, requestHead, type TlsConnection } from '../helpers/tls-connection.js';
import { eventually, eventuallyValue, sleep } from '../helpers/wait.js';
import { makeImage, MEDIA_TYPES, pushBlobMonolithic, pushImage, sha256 } from '../helpers/registry-api.js';

let stack: TestStack; // its registry, PKI and htpasswd; the gateway under test is the CLI's
let gateway: GatewayProcess;
beforeAll(async () => {
  stack = await startTestStack();
  // A TTL far longer than the test: only the change going round the processes can refresh them.
  gateway = await startGatewayProcess(
    ['--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
      '--workers', '2', '--log-level', 'info', '--manifest-cache-ttl', '600'],
    { ca: stack.pki.caPem, metrics: true, processes: 2 },
  );
});
afterAll(async () => {
  await gateway?.stop();
  await stack?.stop();
});

interface Line {
  msg?: string;
  pid?: number;
  method?: string;
  path?: string;
  cache?: string;
}

function lines(): Line[] {
  return linesOf(gateway);
}

function linesOf(gw: GatewayProcess): Line[] {
  return gw
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

/** GETs over new connections until both processes have answered one (or 60 tries); the answers. */
async function getFromBothProcesses(path: string, since: number, cached: boolean): Promise<ProcessResponse[]> {
  const answers: ProcessResponse[] = [];
  const served = () => new Set(lines().slice(since).filter((l) => l.msg === 'request' && l.method === 'GET' && l.path === path && (!cached || l.cache === 'hit')).map((l) => l.pid));
  for (let i = 0; i < 60 && served().size < 2; i++) {
    answers.push(await gateway.request(path, { authorization: stack.authorization(), headers: { accept: MEDIA_TYPES.manifest } }));
    await sleep(20); // the access line follows the response
  }
  expect(served().size, 'both processes answered').toBe(2);
  return answers;
}

describe('manifest cache with --workers 2', () => {
  it('a push through one process is seen by the next pull in every process', async () => {
    const repo = 'cache-workers/app';
    const old = await pushImage(stack, repo, 'latest'); // straight through the test stack's own gateway
    const path = `/v2/${repo}/manifests/latest`;
    // Both processes hold the old manifest.
    const before = await getFromBothProcesses(path, 0, true);
    for (const res of before) expect(res.headers['docker-content-digest']).toBe(old.manifestDigest);

    const next = makeImage('next');
    await pushBlobMonolithic(stack, repo, next.config);
    await pushBlobMonolithic(stack, repo, next.layer);
    const put = await gateway.request(path, { method: 'PUT', authorization: stack.authorization(), headers: { 'content-type': MEDIA_TYPES.manifest }, body: next.manifestBytes });
    expect(put.status).toBe(201);

    const since = lines().length;
    const after = await getFromBothProcesses(path, since, false);
    for (const res of after) {
      expect(res.status).toBe(200);
      expect(res.headers['docker-content-digest']).toBe(sha256(next.manifestBytes));
    }
  });
});

interface Served {
  readonly pid: number;
  readonly connections: readonly TlsConnection[];
}

let probes = 0;

/** Kept-alive connections to `gw`, `perProcess` served by each of its `processes` (a connection stays with the process that accepted it). */
async function connectionsByProcess(gw: GatewayProcess, processes: number, perProcess: number): Promise<Served[]> {
  const byPid = new Map<number, TlsConnection[]>();
  const spare: TlsConnection[] = [];
  const complete = () => byPid.size === processes && [...byPid.values()].every((c) => c.length === perProcess);
  for (let i = 0; i < 200 && !complete(); i++) {
    const connection = await openTlsConnection(gw.port, stack.pki.caPem);
    const path = `/v2/probe/c${++probes}/tags/list`; // a path no access line has named yet
    await connection.send(requestHead('GET', path, [['Host', `127.0.0.1:${gw.port}`], ['Authorization', stack.authorization()]]));
    const pid = await eventuallyValue(() => linesOf(gw).find((l) => l.msg === 'request' && l.path === path)?.pid, 1_000, 10);
    const held = pid === undefined ? undefined : byPid.get(pid) ?? [];
    if (pid === undefined || held === undefined || held.length === perProcess) spare.push(connection);
    else byPid.set(pid, [...held, connection]);
  }
  for (const connection of spare) connection.close();
  expect(complete(), `${perProcess} connections to each of ${processes} processes`).toBe(true);
  return [...byPid].map(([pid, connections]) => ({ pid, connections }));
}

/**
 * `rounds` times: a push through `pushers` (in turn), and right after its 201 a pull through
 * `reader`, which is pulling the same tag all along (so it keeps filling its copy while the
 * registry stores the push); returns the rounds whose pull got the old manifest.
 */
async function pushThenPull(gw: GatewayProcess, repo: string, rounds: number, pick: (round: number) => { pusher: TlsConnection; reader: TlsConnection; puller: TlsConnection }): Promise<string[]> {
  const path = `/v2/${repo}/manifests/latest`;
  const host: readonly [string, string] = ['Host', `127.0.0.1:${gw.port}`];
  const auth: readonly [string, string] = ['Authorization', stack.authorization()];
  const get = (connection: TlsConnection) => connection.send(requestHead('GET', path, [host, auth, ['Accept', MEDIA_TYPES.manifest]]));
  let current = (await pushImage(stack, repo, 'latest')).manifestDigest;
  const stale: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const { pusher, reader, puller } = pick(round);
    const next = makeImage(`race-${round}`);
    await pushBlobMonolithic(stack, repo, next.config);
    await pushBlobMonolithic(stack, repo, next.layer);
    expect((await get(reader)).headers['docker-content-digest']).toBe(current);

    let pulling = true;
    const pulls = (async () => {
      while (pulling) await get(puller);
    })();
    const put = await pusher.send(
      requestHead('PUT', path, [host, auth, ['Content-Type', MEDIA_TYPES.manifest], ['Content-Length', String(next.manifestBytes.length)]]),
      { body: next.manifestBytes },
    );
    const after = await get(reader);
    pulling = false;
    await pulls;
    expect(put.status).toBe(201);
    current = sha256(next.manifestBytes);
    if (after.headers['docker-content-digest'] !== current) stale.push(`round ${round}: ${String(after.headers['docker-content-digest'])}`);
  }
  return stale;
}

describe('manifest cache with --workers: a push is answered only once every process dropped its copies', () => {
  it('--workers 2: a pull through the other process right after a push gets the new manifest, round after round, each way', async () => {
    const [a, b] = await connectionsByProcess(gateway, 2, 3);
    const processes = [a!.connections, b!.connections];
    const stale = await pushThenPull(gateway, 'cache-workers/race2', 50, (round) => {
      const [pusher] = processes[round % 2]!;
      const [, reader, puller] = processes[(round + 1) % 2]!;
      return { pusher: pusher!, reader: reader!, puller: puller! };
    });
    expect(stale, 'pulls right after a push that got the old manifest').toEqual([]);
    expect(gateway.output()).not.toMatch(/confirmed? dropping its manifest copies/);
    for (const connection of processes.flat()) connection.close();
  }, 120_000);

  it('answers anyway, after a bounded wait and with a warning, when a process does not confirm (stopped)', async () => {
    const served = await connectionsByProcess(gateway, 2, 1);
    const primary = served.find((s) => s.pid === gateway.child.pid)!;
    const worker = served.find((s) => s.pid !== gateway.child.pid)!;
    const repo = 'cache-workers/stopped';
    await pushImage(stack, repo, 'latest');
    const next = makeImage('stopped');
    await pushBlobMonolithic(stack, repo, next.config);
    await pushBlobMonolithic(stack, repo, next.layer);
    process.kill(worker.pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const put = await primary.connections[0]!.send(
        requestHead('PUT', `/v2/${repo}/manifests/latest`, [['Host', `127.0.0.1:${gateway.port}`], ['Authorization', stack.authorization()],
          ['Content-Type', MEDIA_TYPES.manifest], ['Content-Length', String(next.manifestBytes.length)]]),
        { body: next.manifestBytes },
      );
      const waited = Date.now() - started;
      expect(put.status).toBe(201);
      expect(waited).toBeGreaterThanOrEqual(1_900);
      expect(waited).toBeLessThan(5_000);
      // The warning is logged as the answer goes out; the log reaches this process a moment later.
      const warned = await eventually(() => gateway.output().includes('a worker did not confirm dropping its manifest copies in time'), 2_000);
      expect(warned, gateway.output().slice(-2000)).toBe(true);
    } finally {
      process.kill(worker.pid, 'SIGCONT');
    }
    // Once running again, the worker has dropped its copy (the message was waiting for it).
    const after = await worker.connections[0]!.send(requestHead('GET', `/v2/${repo}/manifests/latest`,
      [['Host', `127.0.0.1:${gateway.port}`], ['Authorization', stack.authorization()], ['Accept', MEDIA_TYPES.manifest]]));
    expect(after.headers['docker-content-digest']).toBe(sha256(next.manifestBytes));
    for (const { connections } of served) for (const connection of connections) connection.close();
  }, 30_000);

  it('--workers 3: a push through one worker and a pull through another, the change going round by the primary', async () => {
    const three = await startGatewayProcess(
      ['--upstream', stack.registry.url, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile,
        '--workers', '3', '--log-level', 'info', '--manifest-cache-ttl', '600'],
      { ca: stack.pki.caPem, metrics: true, processes: 3 },
    );
    try {
      const served = await connectionsByProcess(three, 3, 3);
      const workers = served.filter((s) => s.pid !== three.child.pid);
      const primary = served.find((s) => s.pid === three.child.pid)!;
      expect(workers).toHaveLength(2);
      // The primary busy with pulls of its own too: the change's way round goes through it.
      let busy = true;
      const load = primary.connections.map(async (connection) => {
        const head = requestHead('GET', '/v2/cache-workers/race3/manifests/latest', [['Host', `127.0.0.1:${three.port}`], ['Authorization', stack.authorization()], ['Accept', MEDIA_TYPES.manifest]]);
        while (busy) await connection.send(head);
      });
      const stale = await pushThenPull(three, 'cache-workers/race3', 60, (round) => {
        const [pusher] = workers[round % 2]!.connections;
        const [, reader, puller] = workers[(round + 1) % 2]!.connections;
        return { pusher: pusher!, reader: reader!, puller: puller! };
      });
      busy = false;
      await Promise.all(load);
      expect(stale, 'pulls right after a push that got the old manifest').toEqual([]);
      expect(three.output()).not.toMatch(/confirmed? dropping its manifest copies/);
      for (const connection of served.flatMap((s) => s.connections)) connection.close();
    } finally {
      await three.stop();
    }
  }, 180_000);
});
