// Desync attempts over TLS: each ambiguous or malformed request is refused with 400 and its
// connection closed, and nothing of it (nor a request hidden behind it) reaches the registry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { rawTlsRequest } from '../helpers/raw-tls.js';
import { sleep } from '../helpers/wait.js';

const auth = basicAuthorization('alice', 'alice-secret');
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.stop());

function upstreamRequests(): number {
  return (stack.registry.log().match(/"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) /g) ?? []).length;
}

// A second request smuggled behind the first: if any part of the chain splits the stream
// differently, the registry would see a GET of this path.
const HIDDEN = 'GET /v2/smuggled/tags/list HTTP/1.1\r\nHost: localhost\r\n\r\n';
const upload = '/v2/team/app/blobs/uploads/';

const corpus: Array<[string, string]> = [
  ['Content-Length and Transfer-Encoding together', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${HIDDEN}`],
  ['two different Content-Length headers', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nContent-Length: 0\r\nContent-Length: ${HIDDEN.length}\r\n\r\n${HIDDEN}`],
  ['a comma-joined Content-Length', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nContent-Length: 0, ${HIDDEN.length}\r\n\r\n${HIDDEN}`],
  ['a Content-Length with a sign', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nContent-Length: +0\r\n\r\n${HIDDEN}`],
  ['an obs-folded header', `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nX-Folded: a\r\n b\r\n\r\n`],
  ['a space before the colon', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n${HIDDEN}`],
  ['Transfer-Encoding: xchunked', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${HIDDEN}`],
  ['Transfer-Encoding: chunked, identity', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${HIDDEN}`],
  ['Transfer-Encoding with a tab-folded value', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding:\tchunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${HIDDEN}`],
  ['a bare LF ending a header line', `GET /v2/ HTTP/1.1\r\nHost: localhost\nAuthorization: ${auth}\r\n\r\n`],
  ['a bare CR inside a header value', `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nX-Note: a\rb\r\n\r\n`],
  ['a NUL in a header value', `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nX-Note: a\u0000b\r\n\r\n`],
  ['a chunk size that is not hex', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n${HIDDEN}`],
  ['a chunk size that overflows', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nabc\r\n0\r\n\r\n${HIDDEN}`],
  ['a chunk shorter than its size', `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\n0\r\n\r\n${HIDDEN}`],
  ['an absolute-form target', `GET http://evil.example/v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\n\r\n`],
  ['an asterisk target', `OPTIONS * HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\n\r\n`],
  ['a space inside the target', `GET /v2/ x HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\n\r\n`],
  ['HTTP/1.1 with no Host', `GET /v2/ HTTP/1.1\r\nAuthorization: ${auth}\r\n\r\n`],
  ['two Host headers', `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nAuthorization: ${auth}\r\n\r\n`],
];

describe('request smuggling and framing', () => {
  for (const [name, request] of corpus) {
    it(`refuses ${name} with 400 and closes the connection, reaching the registry with nothing`, async () => {
      const before = upstreamRequests();
      const res = await rawTlsRequest(stack.gateway.port, stack.pki.caPem, request);
      expect(res.status).toBe(400);
      expect(res.closed).toBe(true);
      // Like every other answer: HSTS, and a JSON body rather than an empty one.
      expect(res.text).toMatch(/\r\nstrict-transport-security: max-age=\d+\r\n/i);
      expect(res.text).toMatch(/\r\n\r\n\{"/);
      // Only one answer: nothing behind the refused request was read as a request of its own.
      expect(res.text.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
      await sleep(100);
      expect(upstreamRequests()).toBe(before);
    });
  }

  it('refuses a broken chunk the same way when the credentials were just verified (the request is then already on its way)', async () => {
    expect((await stack.request('/v2/', { auth: 'alice' })).status).toBe(200);
    await sleep(100);
    const before = upstreamRequests();
    const res = await rawTlsRequest(stack.gateway.port, stack.pki.caPem,
      `POST ${upload} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\n0\r\n\r\n${HIDDEN}`);
    expect(res.closed).toBe(true);
    expect(res.text).not.toMatch(/^HTTP\/1\.1 2/);
    await sleep(100);
    expect(stack.registry.log()).not.toContain('/v2/smuggled/');
    expect(upstreamRequests()).toBe(before);
    // The access log tells what the client got, not the 200 the response object started with.
    const access = stack.logLines().filter((l) => l.msg === 'request' && l.method === 'POST').at(-1);
    expect(access).toMatchObject({ status: 400, completed: false, failure: expect.stringMatching(/^malformed request: HPE_/) });
  });

  it('logs a request refused before its headers were whole, with the status and the parser\'s reason', async () => {
    stack.clearLogs();
    await rawTlsRequest(stack.gateway.port, stack.pki.caPem, `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n`);
    await sleep(100);
    expect(stack.logLines().find((l) => l.msg === 'malformed request')).toMatchObject({ status: 400, reason: expect.stringMatching(/^HPE_/), remote: '127.0.0.1' });
  });

  it('serves a well-framed request on the same kind of connection (the corpus is not refused for its transport)', async () => {
    const before = upstreamRequests();
    const res = await rawTlsRequest(stack.gateway.port, stack.pki.caPem, `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    await sleep(100);
    expect(upstreamRequests()).toBe(before + 1);
  });
});
