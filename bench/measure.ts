// One measurement each: a blob pull or push with curl, a wrk run, all against one base URL.
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { exec } from './services.js';

export interface Target {
  /** `https://127.0.0.1:PORT` or the upstream's `http://127.0.0.1:PORT`. */
  readonly base: string;
  /** CA for https; absent for the plain-HTTP upstream. */
  readonly caFile?: string;
  /** `user:password`; absent for the upstream. */
  readonly credentials?: string;
  /** A bearer token (`--auth token`), sent instead of the credentials by wrk and verified pulls. */
  readonly token?: string;
}

/** The Authorization header value a target's requests carry, if any: its token, else its credentials. */
export function authorization(t: Target): string | undefined {
  if (t.token !== undefined) return `Bearer ${t.token}`;
  return t.credentials === undefined ? undefined : `Basic ${Buffer.from(t.credentials).toString('base64')}`;
}

export interface Blob {
  readonly file: string;
  readonly bytes: number;
  readonly digest: string;
}

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

/** Basic credentials only (`-u`): pulls, pushes and token requests. */
function curlArgs(t: Target, maxSeconds: number): string[] {
  return [
    '-sS', '--max-time', String(maxSeconds),
    ...(t.caFile === undefined ? [] : ['--cacert', t.caFile]),
    ...(t.credentials === undefined ? [] : ['-u', t.credentials]),
  ];
}

/** Writes `mib` MiB of random bytes to `file` and returns its digest. */
export async function makeBlob(file: string, mib: number): Promise<Blob> {
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) {
    randomFillSync(chunk);
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  return { file, bytes: mib << 20, digest: `sha256:${hash.digest('hex')}` };
}

export interface Transfer {
  readonly bytes: number;
  readonly seconds: number;
  /** 10^6 bytes per second. */
  readonly mbps: number;
}

/** GET of the blob to /dev/null; a wrong status or a short transfer is an error. */
export async function pull(t: Target, repo: string, blob: Blob, maxSeconds = 600): Promise<Transfer> {
  const url = `${t.base}/v2/${repo}/blobs/${blob.digest}`;
  const r = await exec('curl', [...curlArgs(t, maxSeconds), '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], (maxSeconds + 10) * 1000);
  const [status, size, seconds] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0 || status !== 200 || size !== blob.bytes) {
    throw new Error(`pull of ${url}: curl exit ${r.code}, HTTP ${status}, ${size} of ${blob.bytes} bytes\n${r.stderr}`);
  }
  return { bytes: blob.bytes, seconds: seconds!, mbps: blob.bytes / seconds! / 1e6 };
}

/**
 * Monolithic upload of the blob to `repo`: POST for an upload URL, then PUT ?digest= with the whole
 * file (no `Expect: 100-continue`, as Docker's Go client sends none). Time is the sum of both.
 */
export async function push(t: Target, repo: string, blob: Blob, maxSeconds = 600): Promise<Transfer> {
  const start = `${t.base}/v2/${repo}/blobs/uploads/`;
  const post = await exec('curl', [...curlArgs(t, 30), '-X', 'POST', '-H', 'Content-Length: 0', '-o', '/dev/null', '-w', '%{http_code} %{time_total} %header{location}', start], 40_000);
  const [postStatus, postSeconds, location] = post.stdout.trim().split(' ');
  if (post.code !== 0 || postStatus !== '202' || !location) {
    throw new Error(`POST ${start}: curl exit ${post.code}, HTTP ${postStatus}, Location ${location}\n${post.stderr}`);
  }
  const upload = new URL(location, t.base).href;
  const put = `${upload}${upload.includes('?') ? '&' : '?'}digest=${encodeURIComponent(blob.digest)}`;
  const r = await exec(
    'curl',
    [...curlArgs(t, maxSeconds), '-X', 'PUT', '-T', blob.file, '-H', 'Content-Type: application/octet-stream', '-H', 'Expect:', '-o', '/dev/null',
      '-w', '%{http_code} %{size_upload} %{time_total} %header{docker-content-digest}', put],
    (maxSeconds + 10) * 1000,
  );
  const [status, size, seconds, digest] = r.stdout.trim().split(' ');
  if (r.code !== 0 || status !== '201' || Number(size) !== blob.bytes || digest !== blob.digest) {
    throw new Error(`push to ${repo}: curl exit ${r.code}, HTTP ${status}, ${size} of ${blob.bytes} bytes sent, digest ${digest}\n${r.stderr}`);
  }
  const total = Number(postSeconds) + Number(seconds);
  return { bytes: blob.bytes, seconds: total, mbps: blob.bytes / total / 1e6 };
}

/** Uploads the blob, a config and a manifest naming both as `repo:latest`, straight to the registry. */
export async function seed(upstream: Target, repo: string, blob: Blob, dir: string): Promise<void> {
  await push(upstream, repo, blob);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [blob.digest] } });
  const configBlob = { file: join(dir, 'config.json'), bytes: Buffer.byteLength(config), digest: `sha256:${createHash('sha256').update(config).digest('hex')}` };
  await writeFile(configBlob.file, config);
  await push(upstream, repo, configBlob);
  const manifest = join(dir, 'manifest.json');
  await writeFile(
    manifest,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configBlob.digest, size: configBlob.bytes },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: blob.digest, size: blob.bytes }],
    }),
  );
  const url = `${upstream.base}/v2/${repo}/manifests/latest`;
  const r = await exec('curl', [...curlArgs(upstream, 30), '-X', 'PUT', '--data-binary', `@${manifest}`, '-H', `Content-Type: ${MANIFEST_TYPE}`, '-o', '/dev/null', '-w', '%{http_code}', url], 40_000);
  if (r.code !== 0 || r.stdout !== '201') throw new Error(`PUT ${url}: curl exit ${r.code}, HTTP ${r.stdout}\n${r.stderr}`);
}

/**
 * An access token from the gateway's token service (`--auth token`), as docker gets one: GET
 * /token?service=..&scope=.. with the target's Basic credentials. Anything but a 200 with a token
 * is an error.
 */
export async function fetchToken(t: Target, service: string, scope: string): Promise<string> {
  const url = `${t.base}/token?${new URLSearchParams({ service, scope })}`;
  const r = await exec('curl', [...curlArgs(t, 30), '-w', '\n%{http_code}', url], 40_000);
  const cut = r.stdout.lastIndexOf('\n');
  const [body, status] = [r.stdout.slice(0, cut), r.stdout.slice(cut + 1)];
  let token: unknown;
  try {
    token = (JSON.parse(body) as { token?: unknown }).token;
  } catch {
    token = undefined;
  }
  if (r.code !== 0 || status !== '200' || typeof token !== 'string' || token === '') {
    throw new Error(`GET ${url}: curl exit ${r.code}, HTTP ${status}, no token in ${JSON.stringify(body.slice(0, 300))}\n${r.stderr}`);
  }
  return token;
}

export interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50ms: number;
  readonly p99ms: number;
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value);
  if (!m) throw new Error(`cannot read the wrk latency "${value}"`);
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
}

/**
 * `wrk -c CONNECTIONS -t 2 -d SECONDS --latency` GETs of the manifest with the target's Basic
 * credentials or bearer token (and any `headers`, as `Name: value`). Any non-2xx/3xx answer or
 * socket error fails the run: the numbers would not describe working requests.
 */
export async function wrk(t: Target, repo: string, seconds: number, options: { connections?: number; headers?: readonly string[] } = {}): Promise<WrkResult> {
  const connections = options.connections ?? 32;
  const headers = options.headers ?? [];
  const url = `${t.base}/v2/${repo}/manifests/latest`;
  const header = authorization(t);
  const auth = header === undefined ? [] : ['-H', `Authorization: ${header}`];
  const r = await exec(
    'wrk',
    ['-c', String(connections), '-t', '2', '-d', `${seconds}s`, '--timeout', '10s', '--latency', '-H', `Accept: ${MANIFEST_TYPE}`, ...auth, ...headers.flatMap((h) => ['-H', h]), url],
    (seconds + 30) * 1000,
  );
  const out = r.stdout;
  const problem = /Non-2xx or 3xx responses: (\d+)/.exec(out) ?? /Socket errors: .*/.exec(out);
  const done = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out);
  const p99 = /^\s+99%\s+(\S+)/m.exec(out);
  if (r.code !== 0 || problem || !done || !rps || !p50 || !p99 || Number(done[1]) === 0) {
    throw new Error(`wrk against ${url} failed (exit ${r.code})${problem ? `: ${problem[0]}` : ''}\n${out}\n${r.stderr}`);
  }
  return {
    requests: Number(done[1]),
    seconds: toMs(`${done[2]}${done[3]}`) / 1000,
    rps: Number(rps[1]),
    p50ms: toMs(p50[1]!),
    p99ms: toMs(p99[1]!),
  };
}
