// Registry parameters hidden in a request body, against the real registry. The registry reads
// "mount", "from", "digest" and "_state" with Go's FormValue, which also parses a body: a form
// (application/x-www-form-urlencoded) on POST, PUT and PATCH, multipart/form-data on any method.
// Go lowercases the media type with Unicode case folding and trims Unicode spaces, so a
// Content-Type the gateway does not read as a form ("mult\u0130part/form-data": U+0130 folds to
// "i") can be one to the registry. Requests here go out as raw bytes, as an attacker writes them.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { rawTlsRequest } from '../helpers/raw-tls.js';
import { MEDIA_TYPES, pushBlobMonolithic, pushImage, sha256, type PushedImage } from '../helpers/registry-api.js';

const POLICY = `rules:
  - users: [admin]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [alice]
    repositories: ["alice/*"]
    actions: [pull, push]
`;

const admin: HtpasswdUser = { user: 'admin', password: 'admin-secret', algorithm: 'bcrypt', cost: 4 };

let stack: TestStack;
let accessDir: string;
let secret: PushedImage;

beforeAll(async () => {
  accessDir = await mkdtemp(join(tmpdir(), 'rgw-forms-'));
  await writeFile(join(accessDir, 'access.yml'), POLICY);
  stack = await startTestStack({ users: [admin], extraArgs: ['--access', join(accessDir, 'access.yml')] });
  secret = await pushImage(stack, 'secret/app', 'v1', { headers: { authorization: stack.authorization('admin') } });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  if (accessDir !== undefined) await rm(accessDir, { recursive: true, force: true });
});

const CRLF = '\r\n';

/** A multipart/form-data body with these fields, and its boundary. */
function multipart(fields: Record<string, string>): { boundary: string; body: Buffer } {
  const boundary = `b${randomBytes(8).toString('hex')}`;
  let text = '';
  for (const [name, value] of Object.entries(fields)) {
    text += `--${boundary}${CRLF}Content-Disposition: form-data; name="${name}"${CRLF}${CRLF}${value}${CRLF}`;
  }
  text += `--${boundary}--${CRLF}`;
  return { boundary, body: Buffer.from(text, 'latin1') };
}

/**
 * One request as raw bytes: `contentTypes` are written as given (bytes, so non-ASCII goes out
 * exactly), each as its own Content-Type header.
 */
function rawRequest(method: string, target: string, contentTypes: Buffer[], body: Buffer, user = 'alice'): Buffer {
  const head = [`${method} ${target} HTTP/1.1`, 'Host: localhost', `Authorization: ${stack.authorization(user)}`, `Content-Length: ${body.length}`, 'Connection: close'];
  const parts: Buffer[] = [Buffer.from(head.join(CRLF) + CRLF, 'latin1')];
  for (const value of contentTypes) parts.push(Buffer.from('Content-Type: ', 'latin1'), value, Buffer.from(CRLF, 'latin1'));
  parts.push(Buffer.from(CRLF, 'latin1'), body);
  return Buffer.concat(parts);
}

/** Content-Type bytes: the text as UTF-8, so "\u0130" goes out as C4 B0. */
const utf8 = (text: string) => Buffer.from(text, 'utf8');

async function send(method: string, target: string, contentTypes: Buffer[], body: Buffer) {
  return rawTlsRequest(stack.gateway.port, stack.pki.caPem, rawRequest(method, target, contentTypes, body));
}

/** Whether alice can read the secret layer from a repository of hers. */
async function layerReadableFrom(repository: string): Promise<boolean> {
  const res = await stack.request(`/v2/${repository}/blobs/${secret.layerDigest}`, { auth: 'alice' });
  if (res.status === 200) expect(sha256(res.body)).toBe(secret.layerDigest);
  return res.status === 200;
}

/** The registry's own view of a repository's blob, without the gateway. */
async function registryHas(repository: string): Promise<boolean> {
  const res = await fetch(`${stack.registry.url}/v2/${repository}/blobs/${secret.layerDigest}`, { method: 'HEAD' });
  return res.status === 200;
}

describe('a cross-repository mount hidden in a form body', () => {
  it('is refused when the Content-Type folds to multipart only in Go (U+0130 for "i")', async () => {
    expect(await layerReadableFrom('secret/app').catch(() => false)).toBe(false); // alice may not pull it
    stack.clearLogs();
    const form = multipart({ mount: secret.layerDigest, from: 'secret/app' });
    const res = await send('POST', '/v2/alice/x/blobs/uploads/', [utf8(`mult\u0130part/form-data; boundary=${form.boundary}`)], form.body);
    expect(res.status, res.text).toBe(415);
    expect(res.text).toContain('"code":"UNSUPPORTED"');
    expect(res.text).toMatch(/Content-Type/);
    expect(await registryHas('alice/x')).toBe(false);
    expect(await layerReadableFrom('alice/x')).toBe(false);
    expect(stack.logLines()).toContainEqual(expect.objectContaining({ audit: 'denied', user: 'alice', method: 'POST', path: '/v2/alice/x/blobs/uploads/' }));
    expect(stack.logLines()).toContainEqual(expect.objectContaining({ msg: 'request', status: 415, failure: expect.stringMatching(/Content-Type/) }));
  });

  it('the same mount with a plain query is refused for lack of pull on the source', async () => {
    const res = await stack.request(`/v2/alice/y/blobs/uploads/?mount=${secret.layerDigest}&from=secret%2Fapp`, { auth: 'alice', method: 'POST', headers: { 'content-length': '0' } });
    expect(res.status).toBe(403);
    expect(await registryHas('alice/y')).toBe(false);
  });

  // Each spelling is one the registry could read as a form (or cannot be told apart from one
  // without Go's exact rules); all are refused before anything reaches the registry.
  const spellings: Array<[string, Buffer[]]> = [
    ['U+0130 in "multipart"', [utf8('mult\u0130part/form-data; boundary=BOUNDARY')]],
    ['U+0130 upper case throughout', [utf8('MULT\u0130PART/FORM-DATA; boundary=BOUNDARY')]],
    ['KELVIN SIGN U+212A, which folds to "k"', [utf8('multipart/form-data\u212A; boundary=BOUNDARY')]],
    ['a no-break space Go trims', [utf8('\u00a0multipart/form-data; boundary=BOUNDARY')]],
    ['NEL (U+0085) Go trims', [utf8('multipart/form-data\u0085; boundary=BOUNDARY')]],
    ['upper case', [utf8('MULTIPART/FORM-DATA; boundary=BOUNDARY')]],
    ['a tab before the parameters', [utf8('multipart/form-data\t; boundary=BOUNDARY')]],
    ['latin1 bytes', [Buffer.from('multipart/form-data; boundary=BOUNDARY; x=\xe9', 'latin1')]],
    ['two Content-Type headers, the form first', [utf8('multipart/form-data; boundary=BOUNDARY'), utf8('application/octet-stream')]],
    ['two Content-Type headers, the form second', [utf8('application/octet-stream'), utf8('multipart/form-data; boundary=BOUNDARY')]],
    ['a list of types', [utf8('application/octet-stream, multipart/form-data; boundary=BOUNDARY')]],
  ];

  it.each(spellings)('%s', async (_what, contentTypes) => {
    const repository = `alice/m${randomBytes(4).toString('hex')}`;
    const form = multipart({ mount: secret.layerDigest, from: 'secret/app' });
    const withBoundary = contentTypes.map((b) => Buffer.from(b.toString('latin1').replace('BOUNDARY', form.boundary), 'latin1'));
    const res = await send('POST', `/v2/${repository}/blobs/uploads/`, withBoundary, form.body);
    expect(res.status, res.text).toBe(415);
    expect(res.closed).toBe(true);
    expect(await registryHas(repository)).toBe(false);
  });

  it('form-urlencoded, U+0130 in "application", on POST', async () => {
    const body = Buffer.from(`mount=${encodeURIComponent(secret.layerDigest)}&from=secret%2Fapp`);
    const res = await send('POST', '/v2/alice/u/blobs/uploads/', [utf8('appl\u0130cat\u0130on/x-www-form-urlencoded')], body);
    expect(res.status, res.text).toBe(415);
    expect(await registryHas('alice/u')).toBe(false);
  });
});

describe('form bodies on every method the registry parses them on', () => {
  /** A real upload session of alice's, to aim PUT, PATCH, GET and DELETE at. */
  async function uploadSession(): Promise<string> {
    const res = await stack.request('/v2/alice/session/blobs/uploads/', { auth: 'alice', method: 'POST', headers: { 'content-length': '0' } });
    expect(res.status).toBe(202);
    return res.headers.location as string;
  }

  it.each([
    ['PUT', 'application/x-www-form-urlencoded'],
    ['PATCH', 'application/x-www-form-urlencoded'],
    ['PUT', 'multipart/form-data; boundary=BOUNDARY'],
    ['PATCH', 'multipart/form-data; boundary=BOUNDARY'],
    ['GET', 'multipart/form-data; boundary=BOUNDARY'],
    ['HEAD', 'multipart/form-data; boundary=BOUNDARY'],
    ['DELETE', 'multipart/form-data; boundary=BOUNDARY'],
    ['DELETE', 'application/x-www-form-urlencoded'],
  ])('%s of an upload session with %s', async (method, contentType) => {
    const location = await uploadSession();
    const form = multipart({ digest: secret.layerDigest });
    const isMultipart = contentType.startsWith('multipart');
    const body = isMultipart ? form.body : Buffer.from(`digest=${encodeURIComponent(secret.layerDigest)}`);
    const res = await send(method, location, [utf8(contentType.replace('BOUNDARY', form.boundary))], body);
    expect(res.status, res.text).toBe(415);
    expect(res.closed).toBe(true);
  });

  it('GET of a manifest and DELETE of a blob with a multipart body', async () => {
    const form = multipart({ x: '1' });
    const type = [utf8(`multipart/form-data; boundary=${form.boundary}`)];
    expect((await send('GET', '/v2/alice/x/manifests/v1', type, form.body)).status).toBe(415);
    expect((await send('DELETE', `/v2/alice/x/blobs/${secret.layerDigest}`, type, form.body)).status).toBe(415);
    expect((await send('GET', '/v2/', type, form.body)).status).toBe(415);
  });
});

describe('what real clients send still passes', () => {
  it('blob uploads with application/octet-stream or no Content-Type, manifests with their media types', async () => {
    await pushBlobMonolithic(stack, 'alice/ok', Buffer.from('a blob'), { headers: { authorization: stack.authorization('alice') } });
    const image = await pushImage(stack, 'alice/ok', 'v1', { headers: { authorization: stack.authorization('alice') } });
    for (const type of [MEDIA_TYPES.manifest, `${MEDIA_TYPES.manifest}; charset=utf-8`, 'APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON']) {
      const res = await send('PUT', '/v2/alice/ok/manifests/v2', [utf8(type)], image.manifestBytes);
      expect(res.status, `${type}: ${res.text}`).toBe(201);
    }
    // A body-less request may say anything: there is nothing to parse.
    const start = await rawTlsRequest(
      stack.gateway.port,
      stack.pki.caPem,
      rawRequest('POST', '/v2/alice/ok/blobs/uploads/', [utf8('application/x-www-form-urlencoded')], Buffer.alloc(0)),
    );
    expect(start.status).toBe(202);
  });
});
