// One measurement each: a blob pull or push with curl, a wrk run, all against one base URL.
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
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

/** The web UI's session cookie, `__Host-registry-session=...`, as a browser sends it back. */
export const SESSION_COOKIE = '__Host-registry-session';

/**
 * Signs the target's user (its Basic credentials) in to the gateway's web UI as a browser does:
 * GET /ui/login (its cookie kept in `jar`, the form's csrf read from the HTML), then POST
 * /ui/login with the form, that cookie and the gateway's own Origin, which must answer 303 to
 * `next` with the session cookie. Returns the `Cookie` header value; anything else is an error
 * with what curl printed.
 */
export async function webSignIn(t: Target, jar: string, next: string): Promise<string> {
  if (t.caFile === undefined || t.credentials === undefined) throw new Error('web UI sign-in needs an https target with credentials');
  const tls = ['-sS', '--max-time', '30', '--cacert', t.caFile];
  const loginUrl = `${t.base}/ui/login`;
  const form = await exec('curl', [...tls, '-c', jar, '-w', '\n%{http_code}', loginUrl], 40_000);
  const cut = form.stdout.lastIndexOf('\n');
  const [html, formStatus] = [form.stdout.slice(0, cut), form.stdout.slice(cut + 1)];
  const csrf = /<input type="hidden" name="csrf" value="([^"]+)">/.exec(html)?.[1];
  if (form.code !== 0 || formStatus !== '200' || csrf === undefined) {
    throw new Error(`GET ${loginUrl}: curl exit ${form.code}, HTTP ${formStatus}, no csrf field in ${JSON.stringify(html.slice(0, 300))}\n${form.stderr}`);
  }
  const colon = t.credentials.indexOf(':');
  const fields = { username: t.credentials.slice(0, colon), password: t.credentials.slice(colon + 1), csrf, next };
  const post = await exec(
    'curl',
    [...tls, '-b', jar, '-c', jar, '-H', `Origin: ${t.base}`,
      ...Object.entries(fields).flatMap(([k, v]) => ['--data-urlencode', `${k}=${v}`]),
      '-w', '\n%{http_code} %header{location}', loginUrl],
    40_000,
  );
  const postCut = post.stdout.lastIndexOf('\n');
  const [postBody, [postStatus, location]] = [post.stdout.slice(0, postCut), post.stdout.slice(postCut + 1).split(' ')];
  let jarText = '';
  try {
    jarText = readFileSync(jar, 'utf8');
  } catch {
    // no jar: no cookie, reported below
  }
  // Netscape cookie file: HttpOnly cookies' lines start with #HttpOnly_; name and value are the last two fields.
  const session = jarText.split('\n').map((line) => line.split('\t')).find((f) => f.length === 7 && f[5] === SESSION_COOKIE)?.[6];
  if (post.code !== 0 || postStatus !== '303' || location !== next || session === undefined || session === '') {
    throw new Error(`POST ${loginUrl} as ${fields.username}: curl exit ${post.code}, HTTP ${postStatus}, Location ${location}, ${session ? 'a' : 'no'} ${SESSION_COOKIE} cookie, page ${JSON.stringify(postBody.slice(0, 300))}\n${post.stderr}`);
  }
  return `${SESSION_COOKIE}=${session}`;
}

/** GET of a web UI page with a session Cookie header: must answer 200 with HTML holding every one of `expect`. */
export async function webPage(t: Target, cookie: string, path: string, expect: readonly string[]): Promise<void> {
  const url = `${t.base}${path}`;
  const r = await exec('curl', ['-sS', '--max-time', '30', ...(t.caFile === undefined ? [] : ['--cacert', t.caFile]), '-H', `Cookie: ${cookie}`, '-w', '\n%{http_code}', url], 40_000);
  const cut = r.stdout.lastIndexOf('\n');
  const [body, status] = [r.stdout.slice(0, cut), r.stdout.slice(cut + 1)];
  const missing = expect.filter((s) => !body.includes(s));
  if (r.code !== 0 || status !== '200' || missing.length > 0) {
    throw new Error(`GET ${url} (signed in): curl exit ${r.code}, HTTP ${status}${missing.length > 0 ? `, without ${missing.join(', ')}` : ''} in ${JSON.stringify(body.slice(0, 300))}\n${r.stderr}`);
  }
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

export interface WrkOptions {
  /** Open connections (default 32). */
  readonly connections?: number;
  /** More request headers, as `Name: value`. */
  readonly headers?: readonly string[];
  /** Path and query to GET instead of the manifest `/v2/REPO/manifests/latest`. */
  readonly path?: string;
  /** The Accept header (default the OCI manifest type). */
  readonly accept?: string;
}

/**
 * `wrk -c CONNECTIONS -t 2 -d SECONDS --latency` GETs of the manifest (or `path`) with the target's
 * Basic credentials or bearer token (and any `headers`, as `Name: value`). Any non-2xx/3xx answer
 * or socket error fails the run: the numbers would not describe working requests.
 */
export async function wrk(t: Target, repo: string, seconds: number, options: WrkOptions = {}): Promise<WrkResult> {
  const connections = options.connections ?? 32;
  const headers = options.headers ?? [];
  const url = `${t.base}${options.path ?? `/v2/${repo}/manifests/latest`}`;
  const header = authorization(t);
  const auth = header === undefined ? [] : ['-H', `Authorization: ${header}`];
  const r = await exec(
    'wrk',
    ['-c', String(connections), '-t', '2', '-d', `${seconds}s`, '--timeout', '10s', '--latency', '-H', `Accept: ${options.accept ?? MANIFEST_TYPE}`, ...auth, ...headers.flatMap((h) => ['-H', h]), url],
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
