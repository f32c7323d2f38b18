import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { clientStalled, createUpstream, describeUpstreamFailure, upstreamRequestOptions, upstreamTimeout, type Upstream } from '../../../src/proxy/upstream.js';

const upstream = { origin: 'http://registry.internal:5000', timeoutMs: 1500 } as Upstream;

function errno(code: string, message = code): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

describe('describeUpstreamFailure', () => {
  it('tells the client 502 when the upstream cannot be reached, and only the log why', () => {
    expect(describeUpstreamFailure(errno('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5000'))).toEqual({
      kind: 'upstream-unavailable',
      status: 502,
      message: 'upstream registry unavailable',
      detail: 'ECONNREFUSED',
    });
  });

  it('tells the client 504 when the upstream stayed silent, by our timer or the kernel giving up connecting', () => {
    expect(describeUpstreamFailure(upstreamTimeout(upstream))).toMatchObject({ status: 504, message: 'upstream registry timed out' });
    expect(describeUpstreamFailure(errno('ETIMEDOUT'))).toMatchObject({ status: 504, message: 'upstream registry timed out' });
  });

  it('tells the client 502 with its own words when the upstream answered something Node cannot parse', () => {
    const failure = describeUpstreamFailure(errno('HPE_INVALID_HEADER_TOKEN', 'Parse Error: Invalid header value char'));
    expect(failure).toEqual({ kind: 'upstream-bad-response', status: 502, message: 'upstream registry sent an unusable response', detail: 'HPE_INVALID_HEADER_TOKEN: Parse Error: Invalid header value char' });
  });

  it('tells the client 408 when it stopped sending its body', () => {
    expect(describeUpstreamFailure(clientStalled(1500))).toMatchObject({ status: 408 });
  });

  it('never puts the upstream address in what the client is told', () => {
    for (const err of [errno('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5000'), upstreamTimeout(upstream), errno('EAI_AGAIN', 'getaddrinfo EAI_AGAIN registry.internal')]) {
      expect(describeUpstreamFailure(err).message).not.toMatch(/registry\.internal|10\.0\.0\.5|5000/);
    }
  });
});

/** The head one request through upstreamRequestOptions puts on the wire, as the upstream reads it. */
async function headOnTheWire(method: string, headers: http.OutgoingHttpHeaders, body: string | null): Promise<string> {
  let received = '';
  const server = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const target = createUpstream(new URL(`http://127.0.0.1:${port}`), 5_000);
  try {
    const req = http.request(upstreamRequestOptions(target, method, '/v2/team/app/blobs/uploads/', headers, body === null));
    req.end(body ?? undefined);
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    res.resume();
    await once(res, 'end');
    return received.slice(0, received.indexOf('\r\n\r\n')).toLowerCase();
  } finally {
    target.close();
    server.close();
  }
}

describe('upstreamRequestOptions', () => {
  it('sends a body-less POST with Content-Length: 0, never as an empty chunked body', async () => {
    const head = await headOnTheWire('POST', { host: 'gw.example', 'x-forwarded-for': '192.0.2.1' }, null);
    expect(head).toMatch(/^post \/v2\/team\/app\/blobs\/uploads\/ http\/1\.1\r\n/);
    expect(head).toContain('\r\ncontent-length: 0');
    expect(head).not.toContain('transfer-encoding');
    expect(head).toContain('\r\nhost: gw.example');
  });

  it('sends a GET with no framing header, and each value of a repeated header on its own line', async () => {
    const head = await headOnTheWire('GET', { host: 'gw.example', accept: ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'] }, null);
    expect(head).not.toMatch(/content-length|transfer-encoding/);
    expect(head).toContain('\r\naccept: application/vnd.oci.image.manifest.v1+json\r\naccept: application/vnd.docker.distribution.manifest.v2+json');
  });

  it('keeps the length of a request that has a body, and names the upstream in Host when the headers do not', async () => {
    const head = await headOnTheWire('PUT', { 'content-length': '5' }, 'hello');
    expect(head).toContain('\r\ncontent-length: 5');
    expect(head).not.toContain('transfer-encoding');
    expect(head).toMatch(/\r\nhost: 127\.0\.0\.1:\d+/);
  });
});
