// The record of events and its webhooks, with the gateway run as users run it (`serve`, a process
// of its own, two processes with --workers 2) in front of the real registry: every manifest push
// and delete and every refusal ends up in the events file, one JSON line each, naming the user,
// and at the webhook, signed and in the order the gateway answered; none is lost while the
// receiver is down, at a clean shutdown, or across a restart; and the file stays bounded.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { basicAuthorization, makeGatewayFiles, type GatewayFiles } from '../helpers/gateway.js';
import { jsonLogLines, spawnCli, type CliProcess, type ProcessResponse } from '../helpers/gateway-process.js';
import { writeHtpasswd, type HtpasswdUser } from '../helpers/htpasswd.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, MEDIA_TYPES, sha256 } from '../helpers/registry-api.js';
import { freePort } from '../helpers/tools.js';
import { expectedSignature, startWebhookReceiver, type Delivery, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { eventually, sleep } from '../helpers/wait.js';

const SECRET = 'events-test-webhook-secret-0123456789';
const user = (name: string): HtpasswdUser => ({ user: name, password: `${name}-secret`, algorithm: 'bcrypt', cost: 4 });
const ALICE = user('alice');
const BOB = user('bob');
const auth = (u: HtpasswdUser) => basicAuthorization(u.user, u.password);

const ACCESS = `rules:
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [bob]                     # read-only
    repositories: ["*"]
    actions: [pull]
`;

let files: GatewayFiles;
let accessFile: string;
let registry: TestRegistry;
beforeAll(async () => {
  files = await makeGatewayFiles('rgw-events-');
  await writeHtpasswd(files.htpasswd, [ALICE, BOB]);
  accessFile = join(files.dir, 'access.yml');
  await writeFile(accessFile, ACCESS);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  await files?.remove();
});

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

interface GatewayProcess extends CliProcess {
  readonly port: number;
  /** One HTTPS request over a new connection (no agent), so either process may take it. */
  request(path: string, options?: RequestOptions & { authorization?: string }): Promise<ProcessResponse>;
}

/**
 * `serve` with --workers `processes`, alice and bob, the access file, and `args`, once every
 * process has logged that it listens, which it does only once it handles requests. (Not
 * startGatewayProcess: the gateway accepts connections while the primary still opens the events
 * file, before it handles requests, and that helper's readiness probe, sent then, is never answered.)
 */
async function serve(args: readonly string[], processes: number): Promise<GatewayProcess> {
  const port = await freePort();
  const cli = spawnCli([
    'serve', '--listen', `127.0.0.1:${port}`, '--upstream', registry.url, '--tls-cert', files.pki.serverCert, '--tls-key', files.pki.serverKey,
    '--htpasswd', files.htpasswd, '--access', accessFile, '--workers', String(processes), '--log-level', 'info', ...args,
  ]);
  try {
    await cli.waitForOutput('registry-gateway listening', { count: processes, timeoutMs: 30_000 });
  } catch (err) {
    await cli.kill();
    throw err;
  }
  return { ...cli, port, request: (path, options = {}) => httpsRequest(port, path, options) };
}

function httpsRequest(port: number, path: string, options: RequestOptions & { authorization?: string }): Promise<ProcessResponse> {
  const started = performance.now();
  const headers = { ...options.headers, ...(options.authorization === undefined ? {} : { authorization: options.authorization }) };
  return new Promise((done, fail) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, ca: files.pki.caPem, servername: 'localhost', agent: false, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - started }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${path}: no answer in 15 s`)));
    req.on('error', fail);
    req.end(options.body);
  });
}

function send(gw: GatewayProcess, path: string, who: HtpasswdUser, options: RequestOptions = {}): Promise<ProcessResponse> {
  return gw.request(path, { ...options, authorization: auth(who) });
}

/** POST then a monolithic PUT `?digest=`: one blob, as containerd pushes it. */
async function uploadBlob(gw: GatewayProcess, repo: string, data: Buffer): Promise<void> {
  const started = await send(gw, `/v2/${repo}/blobs/uploads/`, ALICE, { method: 'POST', headers: { 'content-length': '0' } });
  expect(started.status, started.body.toString()).toBe(202);
  const location = String(started.headers.location);
  const target = `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(sha256(data))}`;
  const put = await send(gw, target, ALICE, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: data });
  expect(put.status, put.body.toString()).toBe(201);
}

interface Prepared {
  readonly repo: string;
  readonly tag: string;
  readonly manifestBytes: Buffer;
  readonly digest: string;
}

/** An image whose blobs are in the registry (uploaded by alice through the gateway); its manifest not yet. */
async function prepareImage(gw: GatewayProcess, repo: string, tag: string): Promise<Prepared> {
  const image = makeImage(tag);
  await uploadBlob(gw, repo, image.config);
  await uploadBlob(gw, repo, image.layer);
  return { repo, tag, manifestBytes: image.manifestBytes, digest: sha256(image.manifestBytes) };
}

function putManifest(gw: GatewayProcess, image: Prepared, who: HtpasswdUser = ALICE): Promise<ProcessResponse> {
  return send(gw, `/v2/${image.repo}/manifests/${image.tag}`, who, { method: 'PUT', headers: { 'content-type': MEDIA_TYPES.manifest }, body: image.manifestBytes });
}

/** A whole push by alice: blobs, then the manifest (201 expected). */
async function push(gw: GatewayProcess, repo: string, tag: string): Promise<Prepared> {
  const image = await prepareImage(gw, repo, tag);
  const res = await putManifest(gw, image);
  expect(res.status, res.body.toString()).toBe(201);
  expect(res.headers['docker-content-digest']).toBe(image.digest);
  return image;
}

type Recorded = Record<string, any>;

/** The events file's lines, parsed (every line must be JSON). */
async function fileEvents(file: string): Promise<Recorded[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Recorded);
}

async function lineCount(file: string): Promise<number> {
  return (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '').length;
}

interface Expected {
  readonly action: 'push' | 'delete' | 'denied';
  readonly user: string;
  readonly repository: string;
  readonly tag: string | null;
  readonly digest: string | null;
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

const pushed = (image: Prepared): Expected => ({
  action: 'push', user: 'alice', repository: image.repo, tag: image.tag, digest: image.digest, method: 'PUT', path: `/v2/${image.repo}/manifests/${image.tag}`, status: 201,
});
const deleted = (image: Prepared): Expected => ({
  action: 'delete', user: 'alice', repository: image.repo, tag: null, digest: image.digest, method: 'DELETE', path: `/v2/${image.repo}/manifests/${image.digest}`, status: 202,
});
const refused = (image: Prepared): Expected => ({
  action: 'denied', user: 'bob', repository: image.repo, tag: null, digest: null, method: 'PUT', path: `/v2/${image.repo}/manifests/${image.tag}`, status: 403,
});

function expectRecorded(events: readonly Recorded[], expected: readonly Expected[]): void {
  expect(events.map((e) => ({ action: e.action, user: e.user, repository: e.repository, tag: e.tag, digest: e.digest, method: e.method, path: e.path, status: e.status })))
    .toEqual(expected);
  for (const e of events) {
    expect(e.id).toMatch(/^[0-9a-f]{32}$/);
    expect(e.via).toBe('registry');
    expect(e.address).toMatch(/127\.0\.0\.1$/);
    if (e.action === 'push') expect(e).toMatchObject({ mediaType: MEDIA_TYPES.manifest, size: expect.any(Number) });
    if (e.action === 'denied') expect(e.reason).toEqual(expect.any(String));
  }
  expect(new Set(events.map((e) => e.id)).size, 'event ids are unique').toBe(events.length);
}

/** Each delivery is signed for its exact body, names its event, and carries the registry's envelope for the event recorded in the file. */
function expectDelivered(deliveries: readonly Delivery[], recorded: readonly Recorded[]): void {
  expect(deliveries.map((d) => d.headers['x-registry-gateway-delivery']), 'deliveries, in the order of the file').toEqual(recorded.map((e) => e.id));
  deliveries.forEach((delivery, i) => {
    const e = recorded[i]!;
    expect(delivery.headers['x-registry-gateway-signature']).toBe(expectedSignature(delivery.body, SECRET));
    expect(delivery.headers['x-registry-gateway-event']).toBe(e.action);
    expect(delivery.headers['content-type']).toBe('application/vnd.docker.distribution.events.v1+json');
    const envelope = JSON.parse(delivery.body) as { events: Recorded[] };
    expect(envelope.events).toHaveLength(1);
    const target: Recorded = { repository: e.repository };
    if (e.tag !== null) target.tag = e.tag;
    if (e.digest !== null) target.digest = e.digest;
    expect(envelope.events[0]).toMatchObject({
      id: e.id,
      timestamp: e.timestamp,
      action: e.action,
      target,
      request: { method: e.method, path: e.path },
      actor: { name: e.user },
      status: e.status,
    });
    if (e.action === 'denied') expect(envelope.events[0]!.target).not.toHaveProperty('tag');
  });
}

/** The pid of the process whose access log line names this request (it follows the response). */
async function servedBy(gw: GatewayProcess, method: string, path: string): Promise<number | undefined> {
  let pid: number | undefined;
  await eventually(() => {
    pid = jsonLogLines(gw.output()).find((l) => l.msg === 'request' && l.method === method && l.path === path)?.pid as number | undefined;
    return pid !== undefined;
  }, 2_000);
  return pid;
}

describe('--workers 2 with a webhook: one record, one ordered stream of deliveries', () => {
  let gateway: GatewayProcess;
  let receiver: WebhookReceiver;
  let eventsFile: string;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    eventsFile = join(files.dir, 'workers', 'events.jsonl');
    gateway = await serve(['--events-file', eventsFile, '--webhook', receiver.url, '--webhook-secret', SECRET], 2);
  });
  afterAll(async () => {
    await gateway?.kill();
    await receiver?.stop();
  });

  it('pushes served by both processes, a delete and a refusal: one line each in the file, and each delivered, signed, in the order answered', async () => {
    const repo = 'events/app';
    const expected: Expected[] = [];
    const pids = new Set<number>();
    const images: Prepared[] = [];
    // New connections until both processes have taken a manifest push (at least 4 pushes).
    for (let i = 0; i < 20 && (i < 4 || pids.size < 2); i++) {
      const image = await push(gateway, repo, `v${i}`);
      images.push(image);
      expected.push(pushed(image));
      const pid = await servedBy(gateway, 'PUT', `/v2/${repo}/manifests/v${i}`);
      if (pid !== undefined) pids.add(pid);
    }
    expect(pids.size, 'both processes served manifest pushes').toBe(2);

    // Pulls make no event; alice deletes the last manifest right after pushing it.
    expect((await send(gateway, `/v2/${repo}/manifests/v0`, BOB, { headers: { accept: MEDIA_TYPES.manifest } })).status).toBe(200);
    const last = await push(gateway, repo, 'to-delete');
    expected.push(pushed(last));
    const del = await send(gateway, `/v2/${repo}/manifests/${last.digest}`, ALICE, { method: 'DELETE' });
    expect(del.status, del.body.toString()).toBe(202);
    expected.push(deleted(last));

    // bob may pull, not push.
    const bobs = await prepareImage(gateway, repo, 'bob');
    const denied = await putManifest(gateway, bobs, BOB);
    expect(denied.status).toBe(403);
    expected.push(refused(bobs));

    expect(await eventually(async () => (await fileEvents(eventsFile)).length >= expected.length, 5_000), 'every event in the file').toBe(true);
    const recorded = await fileEvents(eventsFile);
    expectRecorded(recorded, expected);

    expect(await eventually(() => receiver.deliveries.length >= expected.length, 10_000), 'every event delivered').toBe(true);
    expectDelivered(receiver.deliveries, recorded);
    const actions = receiver.deliveries.map((d) => d.event.action as string);
    expect(actions.slice(-3)).toEqual(['push', 'delete', 'denied']);
  });

  it('a receiver down for a few seconds gets every event once it is back: in order, none lost, none twice', async () => {
    const repo = 'events/outage';
    const before = receiver.deliveries.length;
    const recordedBefore = (await fileEvents(eventsFile)).length;
    await receiver.stop();

    const expected: Expected[] = [];
    for (const tag of ['down-1', 'down-2']) expected.push(pushed(await push(gateway, repo, tag)));
    const bobs = await prepareImage(gateway, repo, 'bob-down');
    expect((await putManifest(gateway, bobs, BOB)).status).toBe(403);
    expected.push(refused(bobs));

    // Recorded at once, whatever the receiver does.
    expect(await eventually(async () => (await fileEvents(eventsFile)).length >= recordedBefore + 3, 5_000)).toBe(true);
    const recorded = (await fileEvents(eventsFile)).slice(recordedBefore);
    expectRecorded(recorded, expected);

    await gateway.waitForOutput('webhook delivery failed', { timeoutMs: 5_000 });
    await sleep(3_000);
    expect(receiver.deliveries.length).toBe(before);
    await receiver.start();

    expect(await eventually(() => receiver.deliveries.length >= before + 3, 15_000, 100), 'delivered once the receiver is back').toBe(true);
    await sleep(1_000); // nothing more comes: no event is sent twice
    expectDelivered(receiver.deliveries.slice(before), recorded);
    const ids = receiver.deliveries.map((d) => d.headers['x-registry-gateway-delivery']);
    expect(new Set(ids).size, 'no delivery twice').toBe(ids.length);
    expectDelivered(receiver.deliveries, await fileEvents(eventsFile));
    await gateway.waitForOutput('webhook delivered again', { timeoutMs: 2_000 });
  }, 40_000);
});

describe('the record across a shutdown and a restart', () => {
  it('a SIGTERM right after a burst of pushes loses none of those answered 201; a restart keeps them and adds to them (file 0600)', async () => {
    const eventsFile = join(files.dir, 'shutdown', 'events.jsonl');
    const repo = 'events/burst';
    const first = await serve(['--events-file', eventsFile], 2);
    onTestFinished(() => first.kill());
    const images = await Promise.all(Array.from({ length: 12 }, (_, i) => prepareImage(first, repo, `burst-${i}`)));

    // Every manifest at once; SIGTERM as soon as half of them were answered, the rest in flight.
    let answered = 0;
    let stopped: Promise<number | null> | undefined;
    const puts = images.map((image) =>
      putManifest(first, image).then((res) => {
        if (++answered === 6) stopped = first.stop();
        return res;
      }),
    );
    const results = await Promise.allSettled(puts);
    expect(await (stopped ?? first.stop())).toBe(0);
    const created = images.filter((_, i) => results[i]!.status === 'fulfilled' && (results[i] as PromiseFulfilledResult<ProcessResponse>).value.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(6);

    const afterStop = await fileEvents(eventsFile);
    const tags = afterStop.map((e) => e.tag as string);
    for (const image of created) expect(tags, `the push of ${image.tag} was answered 201`).toContain(image.tag);
    expect(new Set(tags).size, 'no event twice').toBe(tags.length);
    for (const e of afterStop) expect(e).toMatchObject({ action: 'push', user: 'alice', repository: repo, digest: images.find((i) => i.tag === e.tag)!.digest });

    const second = await serve(['--events-file', eventsFile], 2);
    onTestFinished(() => second.kill());
    const more = await push(second, repo, 'after-restart');
    expect(await second.stop()).toBe(0);
    const afterRestart = await fileEvents(eventsFile);
    expect(afterRestart.slice(0, afterStop.length)).toEqual(afterStop);
    expectRecorded(afterRestart.slice(afterStop.length), [pushed(more)]);
    expect((await stat(eventsFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(files.dir, 'shutdown'))).mode & 0o777).toBe(0o700);
  }, 60_000);

  it('--events-max 5: the file stays within twice that while pushing, and a restart keeps the 5 newest', async () => {
    const eventsFile = join(files.dir, 'bounded', 'events.jsonl');
    const repo = 'events/bounded';
    const first = await serve(['--events-file', eventsFile, '--events-max', '5'], 1);
    onTestFinished(() => first.kill());
    const tags: string[] = [];
    let most = 0;
    // 12 pushes: past twice the limit, so the file is rewritten at least once while serving.
    for (let i = 0; i < 12; i++) {
      const tag = `n${String(i).padStart(2, '0')}`;
      await push(first, repo, tag);
      tags.push(tag);
      expect(await eventually(async () => (await fileEvents(eventsFile)).some((e) => e.tag === tag), 3_000), `${tag} recorded`).toBe(true);
      most = Math.max(most, await lineCount(eventsFile));
    }
    // Rewritten once it holds more than twice what is kept: 2 × 5 + 1 lines at the most, for a moment.
    expect(most, 'lines in the file at any time').toBeLessThanOrEqual(11);
    expect(await lineCount(eventsFile), 'lines after the pushes').toBeLessThanOrEqual(10);
    expect(await first.stop()).toBe(0);

    const second = await serve(['--events-file', eventsFile, '--events-max', '5'], 1);
    onTestFinished(() => second.kill());
    const kept = await fileEvents(eventsFile);
    expect(kept.map((e) => e.tag)).toEqual(tags.slice(-5));
    expect(await second.stop()).toBe(0);
    expect((await fileEvents(eventsFile)).map((e) => e.tag)).toEqual(tags.slice(-5));
  }, 60_000);
});

describe('an events file the gateway cannot use', () => {
  it('stops the start with exit 2 and a line naming --events-file', async () => {
    const folder = join(files.dir, 'a-folder-not-a-file');
    await mkdir(folder);
    const cli = spawnCli(['serve', '--listen', `127.0.0.1:${await freePort()}`, '--upstream', registry.url, '--tls-cert', files.pki.serverCert, '--tls-key', files.pki.serverKey,
      '--htpasswd', files.htpasswd, '--workers', '1', '--events-file', folder]);
    onTestFinished(() => cli.kill());
    expect(await cli.exit).toBe(2);
    expect(cli.stderr()).toMatch(/- --events-file\/GATEWAY_EVENTS_FILE: .*a-folder-not-a-file/);
    expect(cli.stderr()).not.toMatch(/^\s+at /m); // a sentence, not a stack trace
  });
});
