// The requests of the soak, each as a registry client makes it and each checked for the answer that
// client expects: anything else (another status, a short body, a reset) is an error of the run.
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:https';
import { MANIFEST_TYPE } from './measure.js';

export interface SoakContext {
  readonly port: number;
  readonly ca: Buffer;
  readonly repo: string;
  readonly manifestDigest: string;
  readonly blobDigest: string;
  readonly blobBytes: number;
  /** Blobs pushed over and over (a bounded set, so the registry's storage stays small). */
  readonly pushPool: readonly PushBlob[];
}

export interface PushBlob {
  readonly bytes: Buffer;
  readonly digest: string;
}

/** One keep-alive client: its own connection, its own user. */
export interface SoakClient {
  readonly id: number;
  readonly agent: Agent;
  readonly authorization: string;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly bytes: number;
  readonly digest: string;
}

interface Send {
  method: string;
  path: string;
  authorization?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Leave after this many response bytes, as a client that gave up does. */
  abortAfter?: number;
}

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** `n` random blobs of `size` bytes, with their digests. */
export function makePushPool(n: number, size: number): PushBlob[] {
  return Array.from({ length: n }, () => {
    const bytes = randomBytes(size);
    return { bytes, digest: sha256(bytes) };
  });
}

/** One exchange; the response body is streamed, hashed and dropped. Resolves `null` when aborted on purpose. */
function send(ctx: SoakContext, client: SoakClient, o: Send): Promise<Answer | null> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers, 'content-length': String(o.body?.length ?? 0) };
    if (o.authorization !== undefined) headers.authorization = o.authorization;
    let left = false;
    const req = request(
      { host: '127.0.0.1', port: ctx.port, method: o.method, path: o.path, ca: ctx.ca, servername: 'localhost', agent: client.agent, headers, timeout: 60_000 },
      (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
          if (o.abortAfter !== undefined && bytes >= o.abortAfter && !left) {
            left = true;
            req.destroy();
            resolve(null);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, digest: `sha256:${hash.digest('hex')}` }));
        res.on('error', reject);
        res.on('close', () => (res.complete || left ? undefined : reject(new Error(`connection closed after ${bytes} bytes of the body`))));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer for 60 s')));
    req.on('error', (err) => (left ? undefined : reject(err)));
    req.end(o.body);
  });
}

function expectAnswer(what: string, a: Answer | null, status: number, check?: (a: Answer) => string | null): Answer {
  if (a === null) throw new Error(`${what}: no answer`);
  const problem = a.status !== status ? `HTTP ${a.status}, expected ${status}` : (check?.(a) ?? null);
  if (problem !== null) throw new Error(`${what}: ${problem}`);
  return a;
}

const withDigest = (location: string, digest: string) => `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;

function locationOf(a: Answer): string {
  const location = a.headers.location;
  if (typeof location !== 'string' || location === '') throw new Error(`HTTP ${a.status} without a Location`);
  return location;
}

const pickBlob = (ctx: SoakContext) => ctx.pushPool[Math.floor(Math.random() * ctx.pushPool.length)]!;
const pushRepo = (client: SoakClient) => `soak/push-${client.id}`;

type Request = (ctx: SoakContext, client: SoakClient) => Promise<void>;

async function manifestGet(ctx: SoakContext, c: SoakClient): Promise<void> {
  const a = await send(ctx, c, { method: 'GET', path: `/v2/${ctx.repo}/manifests/latest`, authorization: c.authorization, headers: { accept: MANIFEST_TYPE } });
  expectAnswer('manifest GET', a, 200, (x) => (x.digest === ctx.manifestDigest ? null : `manifest digest ${x.digest}`));
}

async function manifestHead(ctx: SoakContext, c: SoakClient): Promise<void> {
  const a = await send(ctx, c, { method: 'HEAD', path: `/v2/${ctx.repo}/manifests/latest`, authorization: c.authorization, headers: { accept: MANIFEST_TYPE } });
  expectAnswer('manifest HEAD', a, 200, (x) => (x.headers['docker-content-digest'] === ctx.manifestDigest ? null : 'wrong Docker-Content-Digest'));
}

async function blobHead(ctx: SoakContext, c: SoakClient): Promise<void> {
  const a = await send(ctx, c, { method: 'HEAD', path: `/v2/${ctx.repo}/blobs/${ctx.blobDigest}`, authorization: c.authorization });
  expectAnswer('blob HEAD', a, 200, (x) => (x.headers['content-length'] === String(ctx.blobBytes) ? null : `Content-Length ${x.headers['content-length']}`));
}

async function blobPull(ctx: SoakContext, c: SoakClient): Promise<void> {
  const a = await send(ctx, c, { method: 'GET', path: `/v2/${ctx.repo}/blobs/${ctx.blobDigest}`, authorization: c.authorization });
  expectAnswer('blob pull', a, 200, (x) => (x.bytes === ctx.blobBytes && x.digest === ctx.blobDigest ? null : `${x.bytes} bytes, ${x.digest}`));
}

async function abortedPull(ctx: SoakContext, c: SoakClient): Promise<void> {
  const a = await send(ctx, c, { method: 'GET', path: `/v2/${ctx.repo}/blobs/${ctx.blobDigest}`, authorization: c.authorization, abortAfter: ctx.blobBytes / 4 });
  if (a !== null) expectAnswer('aborted pull', a, 200, () => 'ended before the client left');
}

/** POST for an upload, then the whole blob in one PUT ?digest=. */
async function monolithicPush(ctx: SoakContext, c: SoakClient): Promise<void> {
  const blob = pickBlob(ctx);
  const started = expectAnswer('push POST', await send(ctx, c, { method: 'POST', path: `/v2/${pushRepo(c)}/blobs/uploads/`, authorization: c.authorization }), 202);
  const put = await send(ctx, c, {
    method: 'PUT', path: withDigest(locationOf(started), blob.digest), authorization: c.authorization,
    headers: { 'content-type': 'application/octet-stream' }, body: blob.bytes,
  });
  expectAnswer('monolithic push PUT', put, 201, (x) => (x.headers['docker-content-digest'] === blob.digest ? null : 'wrong Docker-Content-Digest'));
}

/** POST, two PATCHes with half the blob each, then an empty PUT ?digest=, as Docker pushes a layer. */
async function chunkedPush(ctx: SoakContext, c: SoakClient): Promise<void> {
  const blob = pickBlob(ctx);
  const half = blob.bytes.length >> 1;
  let at = expectAnswer('push POST', await send(ctx, c, { method: 'POST', path: `/v2/${pushRepo(c)}/blobs/uploads/`, authorization: c.authorization }), 202);
  for (const [from, to] of [[0, half], [half, blob.bytes.length]] as const) {
    const patch = await send(ctx, c, {
      method: 'PATCH', path: locationOf(at), authorization: c.authorization,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` }, body: blob.bytes.subarray(from, to),
    });
    at = expectAnswer('chunked push PATCH', patch, 202, (x) => (x.headers.range === `0-${to - 1}` ? null : `Range ${x.headers.range}`));
  }
  const put = await send(ctx, c, { method: 'PUT', path: withDigest(locationOf(at), blob.digest), authorization: c.authorization });
  expectAnswer('chunked push PUT', put, 201, (x) => (x.headers['docker-content-digest'] === blob.digest ? null : 'wrong Docker-Content-Digest'));
}

async function noCredentials(ctx: SoakContext, c: SoakClient): Promise<void> {
  expectAnswer('no credentials', await send(ctx, c, { method: 'GET', path: `/v2/${ctx.repo}/manifests/latest` }), 401);
}

let guesses = 0;
/** A different unknown user each time: one user guessed again and again would be throttled (429). */
async function wrongPassword(ctx: SoakContext, c: SoakClient): Promise<void> {
  const authorization = `Basic ${Buffer.from(`soak-guess-${++guesses}:not-the-password`).toString('base64')}`;
  expectAnswer('wrong password', await send(ctx, c, { method: 'GET', path: '/v2/', authorization }), 401);
}

async function unknownManifest(ctx: SoakContext, c: SoakClient): Promise<void> {
  expectAnswer('unknown manifest', await send(ctx, c, { method: 'GET', path: `/v2/${ctx.repo}/manifests/missing`, authorization: c.authorization, headers: { accept: MANIFEST_TYPE } }), 404);
}

async function unknownBlob(ctx: SoakContext, c: SoakClient): Promise<void> {
  expectAnswer('unknown blob', await send(ctx, c, { method: 'GET', path: `/v2/${ctx.repo}/blobs/sha256:${'0'.repeat(64)}`, authorization: c.authorization }), 404);
}

/** What a client does, and how often, out of 100. */
export const MIX: ReadonlyArray<{ kind: string; weight: number; run: Request }> = [
  { kind: 'manifest GET', weight: 22, run: manifestGet },
  { kind: 'manifest HEAD', weight: 18, run: manifestHead },
  { kind: 'blob HEAD', weight: 12, run: blobHead },
  { kind: 'blob pull', weight: 8, run: blobPull },
  { kind: 'pull left mid-way by the client', weight: 5, run: abortedPull },
  { kind: 'monolithic push', weight: 5, run: monolithicPush },
  { kind: 'chunked push (2 PATCH)', weight: 5, run: chunkedPush },
  { kind: 'no credentials: 401', weight: 10, run: noCredentials },
  { kind: 'wrong password: 401', weight: 5, run: wrongPassword },
  { kind: 'unknown manifest: 404', weight: 5, run: unknownManifest },
  { kind: 'unknown blob: 404', weight: 5, run: unknownBlob },
];

/** A request of the mix, drawn by weight. */
export function pick(): (typeof MIX)[number] {
  let r = Math.random() * MIX.reduce((sum, m) => sum + m.weight, 0);
  for (const m of MIX) if ((r -= m.weight) < 0) return m;
  return MIX[0]!;
}
