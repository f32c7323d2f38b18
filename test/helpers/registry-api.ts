// Small clients of the distribution API (https://distribution.github.io/distribution/spec/api/ and
// the OCI distribution spec) shared by the tests: blob uploads in the styles real
// clients use, image pushes, and checks on the URLs the gateway hands back.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { TestRequestOptions, TestResponse, TestStack } from './gateway.js';
import { gzipLayer, makeTar, MEDIA_TYPES, sha256, type OciImageManifest } from './oci-layout.js';

export { MEDIA_TYPES, sha256 };

export const API_VERSION = 'registry/2.0';

/** The only value a header has; fails the test when it is missing or repeated. */
export function header(res: TestResponse, name: string): string {
  const value = res.headers[name.toLowerCase()];
  if (typeof value !== 'string') {
    throw new Error(`expected exactly one ${name} header, got ${JSON.stringify(value)} (status ${res.status}, body ${res.text.slice(0, 300)})`);
  }
  return value;
}

/** Fails with the response in the message when the status is not the expected one. */
export function expectStatus(res: TestResponse, status: number, what: string): void {
  if (res.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${res.status}\nheaders ${JSON.stringify(res.headers)}\nbody ${res.text.slice(0, 500)}`);
  }
}

/**
 * Asserts that a URL the gateway returned (Location, Link) is where a client must go: relative
 * (`/v2/...`) without `--public-url`, else on exactly the public origin. Returns the path and
 * query, which is what the next request of the test is sent to.
 */
export function publicTarget(url: string, publicUrl: string | undefined): string {
  if (publicUrl === undefined) {
    expect(url, 'a URL without --public-url must be relative').toMatch(/^\/v2\//);
    return url;
  }
  expect(url.startsWith(`${publicUrl}/v2/`), `${url} must be on ${publicUrl}`).toBe(true);
  const parsed = new URL(url);
  expect(parsed.origin).toBe(publicUrl);
  return url.slice(publicUrl.length);
}

/**
 * Asserts that a URL that may stay relative (a Link target) is relative, or on exactly the public
 * origin when there is one. Returns the path and query.
 */
export function relativeOrPublicTarget(url: string, publicUrl: string | undefined): string {
  if (url.startsWith('/')) {
    expect(url, 'a relative URL must be an absolute path under /v2/').toMatch(/^\/v2\//);
    return url;
  }
  expect(publicUrl, `${url} is absolute but there is no --public-url`).toBeDefined();
  return publicTarget(url, publicUrl);
}

/** The target of a `Link: <...>; rel="next"` header, or null when there is none. */
export function nextLink(res: TestResponse): string | null {
  const value = res.headers.link;
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(', ') : value;
  const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(text);
  if (match === null) throw new Error(`unexpected Link header: ${text}`);
  return match[1]!;
}

/** `target` plus one query parameter, whether or not it already has a query. */
export function withQuery(target: string, name: string, value: string): string {
  return `${target}${target.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`;
}

export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}

/** A repository name unique to this run, under `prefix`. */
export function repoName(prefix: string): string {
  return `${prefix}/${randomBytes(4).toString('hex')}`;
}

export type RawRequestOptions = TestRequestOptions;

/** One HTTPS request to the gateway (see `TestStack.request`). */
export function rawRequest(stack: TestStack, path: string, options: RawRequestOptions = {}): Promise<TestResponse> {
  return stack.request(path, options);
}

/** Every response a flow saw, so tests can look at all headers a client was given. */
export type Seen = TestResponse[];

export interface UploadOptions {
  /** `--public-url` of the stack, if any: every Location must be on it. */
  publicUrl?: string;
  /** Extra request headers on every request of the flow. */
  headers?: Record<string, string>;
  /** Responses are appended here. */
  seen?: Seen;
}

type Send = (path: string, options: RawRequestOptions) => Promise<TestResponse>;

function sender(stack: TestStack, options: UploadOptions): Send {
  return async (path, reqOptions) => {
    const res = await rawRequest(stack, path, { ...reqOptions, headers: { ...options.headers, ...reqOptions.headers } });
    options.seen?.push(res);
    return res;
  };
}

export interface PushedBlob {
  digest: string;
  /** Every Location the gateway answered with, in order. */
  locations: string[];
  /** The final 201. */
  created: TestResponse;
}

async function startUpload(send: Send, repo: string, options: UploadOptions, locations: string[]): Promise<string> {
  const res = await send(`/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
  expectStatus(res, 202, `POST /v2/${repo}/blobs/uploads/`);
  const location = header(res, 'location');
  locations.push(location);
  expect(header(res, 'docker-upload-uuid')).toMatch(/^[0-9a-f-]{36}$/);
  return publicTarget(location, options.publicUrl);
}

async function finishUpload(
  send: Send,
  target: string,
  digest: string,
  body: Buffer | undefined,
  options: UploadOptions,
  locations: string[],
): Promise<PushedBlob> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (body === undefined) headers['content-length'] = '0';
  const res = await send(withQuery(target, 'digest', digest), { method: 'PUT', headers, body });
  expectStatus(res, 201, `PUT ${target.split('?')[0]}?digest=`);
  const location = header(res, 'location');
  locations.push(location);
  expect(publicTarget(location, options.publicUrl)).toMatch(new RegExp(`^/v2/.+/blobs/${digest}$`));
  expect(header(res, 'docker-content-digest')).toBe(digest);
  return { digest, locations, created: res };
}

/**
 * POST, then one PATCH per chunk with `Content-Range: start-end` (following each Location), then
 * an empty PUT `?digest=`: the chunked upload of the distribution spec.
 */
export async function pushBlobChunked(stack: TestStack, repo: string, data: Buffer, chunkSize: number, options: UploadOptions = {}): Promise<PushedBlob> {
  const send = sender(stack, options);
  const locations: string[] = [];
  let target = await startUpload(send, repo, options, locations);
  for (let start = 0; start < data.length; start += chunkSize) {
    const chunk = data.subarray(start, Math.min(start + chunkSize, data.length));
    const end = start + chunk.length - 1;
    const res = await send(target, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end}`, 'content-length': String(chunk.length) },
      body: chunk,
    });
    expectStatus(res, 202, `PATCH ${start}-${end}`);
    expect(header(res, 'range')).toBe(`0-${end}`);
    const location = header(res, 'location');
    locations.push(location);
    target = publicTarget(location, options.publicUrl);
  }
  return finishUpload(send, target, sha256(data), undefined, options, locations);
}

/** Docker's style: POST, one PATCH streaming the whole blob chunked (no length, no range), empty PUT. */
export async function pushBlobStreamed(stack: TestStack, repo: string, data: Buffer, options: UploadOptions = {}): Promise<PushedBlob> {
  const send = sender(stack, options);
  const locations: string[] = [];
  let target = await startUpload(send, repo, options, locations);
  const pieces: Buffer[] = [];
  for (let start = 0; start < data.length; start += 16_384) pieces.push(data.subarray(start, start + 16_384));
  const res = await send(target, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: pieces });
  expectStatus(res, 202, 'streamed PATCH');
  expect(header(res, 'range')).toBe(`0-${data.length - 1}`);
  const location = header(res, 'location');
  locations.push(location);
  target = publicTarget(location, options.publicUrl);
  return finishUpload(send, target, sha256(data), undefined, options, locations);
}

/** containerd's style: POST, then one PUT `?digest=` carrying the whole blob. */
export async function pushBlobMonolithic(stack: TestStack, repo: string, data: Buffer, options: UploadOptions = {}): Promise<PushedBlob> {
  const send = sender(stack, options);
  const locations: string[] = [];
  const target = await startUpload(send, repo, options, locations);
  return finishUpload(send, target, sha256(data), data, options, locations);
}

export interface PushedImage {
  repo: string;
  tag: string;
  config: Buffer;
  configDigest: string;
  layer: Buffer;
  layerDigest: string;
  manifest: OciImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
  /** The manifest PUT's 201. */
  created: TestResponse;
}

/** An OCI image manifest with a config blob and one gzip'd tar layer, not yet pushed. */
export function makeImage(label: string): { config: Buffer; layer: Buffer; manifest: OciImageManifest; manifestBytes: Buffer } {
  const tar = makeTar({ [`srv/${label}.txt`]: `${label} ${randomBytes(8).toString('hex')}\n` });
  const layer = gzipLayer(tar);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] }, config: {} }),
  );
  const manifest: OciImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: sha256(config), size: config.length },
    layers: [{ mediaType: MEDIA_TYPES.layerGzip, digest: sha256(layer), size: layer.length }],
  };
  return { config, layer, manifest, manifestBytes: Buffer.from(JSON.stringify(manifest)) };
}

/** Pushes the config and the layer (containerd style) and PUTs the manifest under `tag`. */
export async function pushImage(stack: TestStack, repo: string, tag: string, options: UploadOptions = {}): Promise<PushedImage> {
  const image = makeImage(tag);
  await pushBlobMonolithic(stack, repo, image.config, options);
  await pushBlobMonolithic(stack, repo, image.layer, options);
  const send = sender(stack, options);
  const res = await send(`/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': MEDIA_TYPES.manifest },
    body: image.manifestBytes,
  });
  expectStatus(res, 201, `PUT /v2/${repo}/manifests/${tag}`);
  const manifestDigest = sha256(image.manifestBytes);
  expect(header(res, 'docker-content-digest')).toBe(manifestDigest);
  expect(publicTarget(header(res, 'location'), options.publicUrl)).toBe(`/v2/${repo}/manifests/${manifestDigest}`);
  return {
    repo,
    tag,
    ...image,
    configDigest: image.manifest.config.digest,
    layerDigest: image.manifest.layers[0]!.digest,
    manifestDigest,
    created: res,
  };
}

/** Every header name and value of the responses, as `name: value` lines. */
export function headerLines(responses: readonly TestResponse[]): string[] {
  const lines: string[] = [];
  for (const res of responses) {
    for (const [name, value] of Object.entries(res.headers)) {
      for (const v of Array.isArray(value) ? value : [value ?? '']) lines.push(`${name}: ${v}`);
    }
  }
  return lines;
}
