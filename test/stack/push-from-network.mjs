// Run inside a container on the stack's compose network (node only, no other dependency): pushes
// a one-layer image to https://gateway:8443 through the registry API, verifying TLS against the
// stack's CA (/ca.crt), and prints {"digest": ...} of the manifest it put.
// Environment: PUSH_USER, PUSH_PASSWORD, PUSH_REPOSITORY, PUSH_TAG.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { gzipSync } from 'node:zlib';

const ORIGIN = 'https://gateway:8443';
const ca = readFileSync('/ca.crt');
const { PUSH_USER, PUSH_PASSWORD, PUSH_REPOSITORY, PUSH_TAG } = process.env;
const authorization = `Basic ${Buffer.from(`${PUSH_USER}:${PUSH_PASSWORD}`).toString('base64')}`;

function request(method, path, headers = {}, body = undefined) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, ORIGIN);
    const req = https.request(
      url,
      { method, ca, headers: { authorization, ...headers, ...(body === undefined ? {} : { 'content-length': body.length }) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function expectStatus(what, res, status) {
  if (res.status !== status) throw new Error(`${what}: ${res.status} (want ${status}): ${res.body}`);
}

const sha256 = (data) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function pushBlob(blob) {
  const digest = sha256(blob);
  const started = await request('POST', `/v2/${PUSH_REPOSITORY}/blobs/uploads/`);
  expectStatus('upload start', started, 202);
  // Followed as docker follows it: resolved against the origin this client used. The public name
  // (GATEWAY_PUBLIC_URL) does not resolve in here, so a Location on it would fail the push.
  const location = new URL(started.headers.location, ORIGIN);
  if (location.origin !== ORIGIN) throw new Error(`upload Location ${started.headers.location} leaves ${ORIGIN}`);
  location.searchParams.set('digest', digest);
  const put = await request('PUT', location.href, { 'content-type': 'application/octet-stream' }, blob);
  expectStatus('upload finish', put, 201);
  return digest;
}

// One layer: a tar archive holding hello.txt (a 512-byte header, the content padded to 512, and
// two zero blocks at the end).
const content = Buffer.from(`pushed from inside the compose network at ${new Date().toISOString()}\n`);
const header = Buffer.alloc(512);
header.write('hello.txt', 0);
header.write('0000644\0', 100);
header.write('0000000\0', 108);
header.write('0000000\0', 116);
header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136);
header.write('        ', 148);
header.write('0', 156);
header.write('ustar\x0000', 257);
let sum = 0;
for (const byte of header) sum += byte;
header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
const tar = Buffer.concat([header, content, Buffer.alloc(512 - (content.length % 512)), Buffer.alloc(1024)]);
const layer = gzipSync(tar);

const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }),
);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: await pushBlob(config) },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: await pushBlob(layer) }],
  }),
);
const put = await request(
  'PUT',
  `/v2/${PUSH_REPOSITORY}/manifests/${PUSH_TAG}`,
  { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' },
  manifest,
);
expectStatus('manifest', put, 201);
const digest = sha256(manifest);
if (put.headers['docker-content-digest'] !== digest) throw new Error(`manifest digest ${put.headers['docker-content-digest']}, want ${digest}`);
console.log(JSON.stringify({ digest }));
