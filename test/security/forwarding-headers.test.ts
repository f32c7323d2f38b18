// A client cannot steer the URLs the registry builds: Host, X-Forwarded-* and Forwarded headers it
// sends are not believed, and the upstream gets exactly one Host and one set of forwarding headers,
// the gateway's. Hop-by-hop headers (RFC 9110 section 7.6.1) stop at the gateway in both
// directions. An upstream header the gateway cannot pass on safely (a CR, LF, NUL or other control
// byte in it) turns into a 502, never a crash or a header injected into the client's answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { rawTlsRequest } from '../helpers/raw-tls.js';
import {
  API_VERSION,
  header,
  headerLines,
  publicTarget,
  pushBlobChunked,
  pushBlobMonolithic,
  pushImage,
  randomBlob,
  rawRequest,
  repoName,
  type Seen,
} from '../helpers/registry-api.js';
import { headerNames, responseHead, startRawUpstream, startRecordingUpstream, type RawUpstream, type RecordedRequest, type RecordingUpstream } from '../helpers/upstreams.js';
import { sleep } from '../helpers/wait.js';

const PUBLIC_URL = 'https://registry.example.test';

/** What a hostile client (or a confused proxy in front of the gateway) might send. */
const SPOOFED: Record<string, string> = {
  host: 'evil.example',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'http',
  'x-forwarded-port': '8080',
  'x-forwarded-for': '203.0.113.66',
  forwarded: 'for=203.0.113.66;host=evil.example;proto=http',
  'x-real-ip': '203.0.113.66',
  // Read as X-Forwarded-Host by servers that map header names to CGI-style variables.
  x_forwarded_host: 'evil.example',
  'true-client-ip': '203.0.113.66',
  'x-original-host': 'evil.example',
};

for (const publicUrl of [undefined, PUBLIC_URL]) {
  const where = publicUrl === undefined ? 'without --public-url' : `with --public-url ${publicUrl}`;

  describe(`spoofed Host and forwarding headers ${where}`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack(publicUrl === undefined ? {} : { publicUrl });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('leave every Location of uploads, a mount and a manifest PUT on the right origin', async () => {
      const seen: Seen = [];
      // A Host other than the public URL's (here a spoofed one; in practice a container using
      // https://gateway:8443) gets relative Locations, which the client resolves against the
      // origin it connected to: with or without --public-url, never evil.example.
      const options = { seen, headers: SPOOFED };
      const repo = repoName('spoof/app');
      // pushBlob* and pushImage check each Location with publicTarget and follow only its path.
      await pushBlobChunked(stack, repo, randomBlob(40_000), 15_000, options);
      await pushBlobMonolithic(stack, repo, randomBlob(1_000), options);
      const image = await pushImage(stack, repo, 'v1', options);
      const other = repoName('spoof/other');
      const mount = await rawRequest(stack, `/v2/${other}/blobs/uploads/?mount=${image.layerDigest}&from=${encodeURIComponent(repo)}`, {
        method: 'POST',
        headers: SPOOFED,
      });
      seen.push(mount);
      expect(mount.status).toBe(201);
      expect(publicTarget(header(mount, 'location'), undefined)).toBe(`/v2/${other}/blobs/${image.layerDigest}`);

      expect(seen.length).toBeGreaterThan(10);
      for (const res of seen) {
        const location = res.headers.location;
        if (typeof location === 'string') {
          expect(location).not.toMatch(/^http:/);
          publicTarget(location, undefined);
        }
      }
      expect(headerLines(seen).filter((line) => /evil\.example|203\.0\.113/.test(line))).toEqual([]);
    });
  });
}

// The real registry does not log request headers: a recording upstream shows what reaches it.
describe('forwarding headers the upstream receives', () => {
  let upstream: RecordingUpstream;
  let stack: TestStack;
  let withPublic: TestStack;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    stack = await startTestStack({ upstream: upstream.url });
    withPublic = await startTestStack({ publicUrl: PUBLIC_URL, upstream: upstream.url });
  });
  afterAll(async () => {
    await stack?.stop();
    await withPublic?.stop();
    await upstream?.stop();
  });

  /** Every value of a header, however many times it was sent. */
  const values = (req: RecordedRequest, name: string): string[] => {
    const out: string[] = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i]!.toLowerCase() === name) out.push(req.rawHeaders[i + 1]!);
    }
    return out;
  };

  for (const which of ['no --public-url', '--public-url'] as const) {
    it(`are exactly the gateway's own, once each (${which})`, async () => {
      const target = which === '--public-url' ? withPublic : stack;
      upstream.requests.length = 0;
      const res = await rawRequest(target, '/v2/', { headers: SPOOFED });
      expect(res.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      const seen = upstream.requests[0]!;
      const ownHost = which === '--public-url' ? 'registry.example.test' : target.host;
      expect(values(seen, 'host')).toEqual([ownHost]);
      expect(values(seen, 'x-forwarded-host')).toEqual([ownHost]);
      expect(values(seen, 'x-forwarded-proto')).toEqual(['https']);
      expect(values(seen, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      expect(values(seen, 'x-forwarded-port')).toEqual([]);
      expect(values(seen, 'forwarded')).toEqual([]);
      expect(values(seen, 'x-real-ip')).toEqual([]);
      expect(values(seen, 'x_forwarded_host')).toEqual([]);
      expect(values(seen, 'true-client-ip')).toEqual([]);
      expect(values(seen, 'x-original-host')).toEqual([]);
      expect(seen.rawHeaders.join('\n')).not.toMatch(/203\.0\.113\.66|evil\.example/);
    });
  }
});

// The real registry sends no hop-by-hop headers worth stripping and does not log request headers:
// a recording upstream stands in.
describe('hop-by-hop headers', () => {
  let upstream: RecordingUpstream;
  let stack: TestStack;

  beforeAll(async () => {
    upstream = await startRecordingUpstream((req, res) => {
      if (req.url.startsWith('/v2/plain/')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'keep-alive': 'timeout=7, max=77',
        connection: 'keep-alive, X-Upstream-Secret, X-Upstream-Other',
        'x-upstream-secret': 'internal-token',
        'x-upstream-other': 'internal-other',
        'proxy-authenticate': 'Basic realm="upstream proxy"',
        'proxy-authorization': 'Basic dXBzdHJlYW06cHJveHk=',
        'proxy-connection': 'keep-alive',
        upgrade: 'h2c',
        te: 'trailers',
        'x-kept': 'yes',
        'docker-content-digest': 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
      });
      res.end('{}');
    });
    stack = await startTestStack({ upstream: upstream.url });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.stop();
  });

  it('are stripped from responses, end-to-end headers are kept', async () => {
    const res = await rawRequest(stack, '/v2/team/app/manifests/v1', { method: 'GET' });
    expect(res.status).toBe(200);
    // The header this upstream sent is gone; the gateway may add its own for its own connection.
    expect(res.headers['keep-alive'] ?? '').not.toMatch(/timeout=7\b|max=77/);
    expect(String(res.headers.connection ?? '')).not.toMatch(/x-upstream/i);
    for (const name of ['x-upstream-secret', 'x-upstream-other', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'upgrade', 'te']) {
      expect(res.headers[name], `${name} reached the client`).toBeUndefined();
    }
    expect(header(res, 'x-kept')).toBe('yes');
    expect(header(res, 'docker-content-digest')).toMatch(/^sha256:0{64}$/);
    expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
    expect(res.text).toBe('{}');
  });

  it('are stripped from requests, end-to-end headers reach the upstream', async () => {
    upstream.requests.length = 0;
    const res = await rawRequest(stack, '/v2/team/app/blobs/uploads/', {
      method: 'POST',
      headers: {
        connection: 'X-Secret, X-Also-Secret',
        'x-secret': '1',
        'x-also-secret': '2',
        te: 'trailers',
        upgrade: 'websocket',
        'proxy-authorization': 'Basic cHJveHk6cHJveHktcGFzc3dvcmQ=',
        'proxy-connection': 'keep-alive',
        'keep-alive': 'timeout=3',
        'x-request-kept': 'yes',
        'content-type': 'application/octet-stream',
      },
      body: Buffer.from('hello'),
    });
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0]!;
    const names = headerNames(seen);
    for (const name of ['x-secret', 'x-also-secret', 'te', 'upgrade', 'proxy-authorization', 'proxy-connection', 'keep-alive']) {
      expect(names, `${name} reached the upstream`).not.toContain(name);
    }
    expect(String(seen.headers.connection ?? '')).not.toMatch(/secret/i);
    expect(seen.rawHeaders.join('\n')).not.toContain('cHJveHk6cHJveHktcGFzc3dvcmQ=');
    expect(seen.headers['x-request-kept']).toBe('yes');
    expect(seen.headers['content-type']).toBe('application/octet-stream');
    expect(seen.body.toString()).toBe('hello');
  });

  it('are stripped from a streamed (chunked) request too, and its body arrives whole', async () => {
    upstream.requests.length = 0;
    const pieces = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('hij')];
    const res = await rawRequest(stack, '/v2/team/app/blobs/uploads/some-uuid', {
      method: 'PATCH',
      headers: { connection: 'X-Secret', 'x-secret': '1', te: 'trailers', 'content-type': 'application/octet-stream' },
      body: pieces,
    });
    expect(res.status).toBe(200);
    const seen = upstream.requests[0]!;
    expect(headerNames(seen)).not.toContain('x-secret');
    expect(headerNames(seen)).not.toContain('te');
    expect(seen.body.toString()).toBe('abcdefghij');
  });

  it('an upgrade request (websocket, h2c) is served as a plain request and the upgrade goes nowhere', async () => {
    for (const [upgrade, extra] of [['websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'], ['h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n']] as const) {
      upstream.requests.length = 0;
      const res = await rawTlsRequest(stack.gateway.port, stack.pki.caPem,
        `GET /v2/plain/tags/list HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${stack.authorization()}\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: ${upgrade}\r\n${extra}\r\n`);
      expect(res.status).toBe(200);
      expect(res.text).not.toMatch(/^upgrade:/im);
      expect(upstream.requests).toHaveLength(1);
      const names = headerNames(upstream.requests[0]!);
      for (const name of ['upgrade', 'http2-settings']) expect(names, `${name} reached the upstream (${upgrade})`).not.toContain(name);
      expect(String(upstream.requests[0]!.headers.connection ?? '')).not.toMatch(/upgrade|http2/i);
    }
  });

  // Stripping a Content-Length named in Connection would send the body upstream unframed, where the
  // registry would read it as a request of its own.
  for (const method of ['GET', 'DELETE', 'POST']) {
    it(`a Connection header naming Content-Length keeps a ${method} body framed, so nothing is smuggled behind it`, async () => {
      upstream.requests.length = 0;
      const hidden = 'GET /v2/smuggled/tags/list HTTP/1.1\r\nHost: localhost\r\n\r\n';
      const res = await rawTlsRequest(stack.gateway.port, stack.pki.caPem,
        `${method} /v2/plain/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${stack.authorization()}\r\nConnection: Content-Length, close\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`);
      expect(res.status).toBe(200);
      await sleep(100);
      expect(upstream.requests.map((r) => r.url)).toEqual(['/v2/plain/x']);
      expect(upstream.requests[0]!.headers['content-length']).toBe(String(hidden.length));
      expect(upstream.requests[0]!.body.toString()).toBe(hidden);
    });
  }
});

// Headers no HTTP library would write: the upstream here writes raw bytes.
describe('an upstream header with bytes that may not be passed on', () => {
  let upstream: RawUpstream;
  let gw: TestStack;
  /** What the upstream answers next, given its own origin (so Locations are ones the gateway rewrites). */
  let answer: (origin: string) => string = () => '';

  beforeAll(async () => {
    upstream = await startRawUpstream(({ socket }) => socket.end(answer(upstream.url)));
    gw = await startTestStack({ upstream: upstream.url });
  });
  afterAll(async () => {
    await gw?.stop();
    await upstream?.stop();
  });

  const upload = (origin: string) => `${origin}/v2/team/app/blobs/uploads/u1?_state=abc`;
  const corpus: Array<[string, (origin: string) => string]> = [
    ['a bare CR inside a Location', (o) => responseHead('HTTP/1.1 202 Accepted', [`Location: ${upload(o)}\rSet-Cookie: injected=1`, 'Content-Length: 0'])],
    ['a bare LF inside a Location', (o) => responseHead('HTTP/1.1 202 Accepted', [`Location: ${upload(o)}\nSet-Cookie: injected=1`, 'Content-Length: 0'])],
    ['a bare LF inside a Link target', (o) => responseHead('HTTP/1.1 200 OK', [`Link: <${o}/v2/_catalog?n=1\nSet-Cookie: injected=1>; rel="next"`, 'Content-Length: 0'])],
    ['a bare CR inside a WWW-Authenticate', () => responseHead('HTTP/1.1 401 Unauthorized', ['WWW-Authenticate: Bearer realm="https://auth.internal/token"\rSet-Cookie: injected=1', 'Content-Length: 0'])],
    ['a NUL inside a Location', (o) => responseHead('HTTP/1.1 201 Created', [`Location: ${o}/v2/team/app/blobs/sha256:aa\u0000Set-Cookie: injected=1`, 'Content-Length: 0'])],
    ['an escape character inside a Link', (o) => responseHead('HTTP/1.1 200 OK', [`Link: <${o}/v2/_catalog?n=1>; rel="next"\u001b[2J`, 'Content-Length: 0'])],
    ['a DEL inside a WWW-Authenticate', () => responseHead('HTTP/1.1 401 Unauthorized', ['WWW-Authenticate: Basic realm="x\u007f"', 'Content-Length: 0'])],
    ['a Location folded onto a second line', (o) => `HTTP/1.1 201 Created\r\nLocation: ${o}/v2/team/app/blobs/sha256:aa\r\n Set-Cookie: injected=1\r\nContent-Length: 0\r\n\r\n`],
    ['a CR inside the status line', () => 'HTTP/1.1 201 Created\rSet-Cookie: injected=1\r\nContent-Length: 0\r\n\r\n'],
  ];

  for (const [name, head] of corpus) {
    it(`answers ${name} with a clean 502, and keeps serving`, async () => {
      answer = head;
      const res = await rawTlsRequest(gw.gateway.port, gw.pki.caPem,
        `GET /v2/team/app/blobs/uploads/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${gw.authorization()}\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(502);
      const [headText = '', body = ''] = res.text.split('\r\n\r\n');
      expect(headText).not.toMatch(/injected|set-cookie|auth\.internal|127\.0\.0\.1/i);
      expect(headText).toMatch(/^content-type: application\/json/im);
      expect(headText).toMatch(/^docker-distribution-api-version: registry\/2\.0$/im);
      expect(JSON.parse(body)).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'upstream registry sent an unusable response', detail: null }] });

      answer = () => responseHead('HTTP/1.1 200 OK', ['Content-Type: application/json', 'Content-Length: 2']) + '{}';
      const next = await rawTlsRequest(gw.gateway.port, gw.pki.caPem,
        `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${gw.authorization()}\r\nConnection: close\r\n\r\n`);
      expect(next.status).toBe(200);
      expect(next.text.endsWith('{}')).toBe(true);
    });
  }

  it('answers an upstream 101 Switching Protocols with 502 instead of handing the connection over', async () => {
    answer = () => responseHead('HTTP/1.1 101 Switching Protocols', ['Upgrade: websocket', 'Connection: Upgrade']);
    const res = await rawTlsRequest(gw.gateway.port, gw.pki.caPem,
      `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${gw.authorization()}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(502);
    expect(res.text).not.toMatch(/^upgrade:/im);
  });
});
