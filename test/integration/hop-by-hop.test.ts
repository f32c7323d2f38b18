// Hop-by-hop headers (RFC 9110 §7.6.1) stop at the gateway in both directions. The real registry
// sends none worth stripping and does not log request headers, so a recording upstream stands in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestStack } from '../helpers/gateway.js';
import { API_VERSION, header, rawRequest } from './registry-api.js';
import { headerNames, startRecordingUpstream, startStackInFrontOf, type RecordingUpstream } from './recording-upstream.js';

describe('hop-by-hop headers', () => {
  let upstream: RecordingUpstream;
  let stack: TestStack;

  beforeAll(async () => {
    upstream = await startRecordingUpstream((_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'keep-alive': 'timeout=7, max=77',
        connection: 'keep-alive, X-Upstream-Secret, X-Upstream-Other',
        'x-upstream-secret': 'internal-token',
        'x-upstream-other': 'internal-other',
        'proxy-authenticate': 'Basic realm="upstream proxy"',
        'proxy-connection': 'keep-alive',
        upgrade: 'h2c',
        'x-kept': 'yes',
        'docker-content-digest': 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
      });
      res.end('{}');
    });
    stack = await startStackInFrontOf(upstream);
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
  });

  it('are stripped from responses, end-to-end headers are kept', async () => {
    const res = await rawRequest(stack, '/v2/team/app/manifests/v1', { method: 'GET' });
    expect(res.status).toBe(200);
    // The header this upstream sent is gone; the gateway may add its own for its own connection.
    expect(res.headers['keep-alive'] ?? '').not.toMatch(/timeout=7\b|max=77/);
    expect(String(res.headers.connection ?? '')).not.toMatch(/x-upstream/i);
    expect(res.headers['x-upstream-secret']).toBeUndefined();
    expect(res.headers['x-upstream-other']).toBeUndefined();
    expect(res.headers['proxy-authenticate']).toBeUndefined();
    expect(res.headers['proxy-connection']).toBeUndefined();
    expect(res.headers.upgrade).toBeUndefined();
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
});
