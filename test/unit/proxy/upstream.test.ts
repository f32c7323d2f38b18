import { describe, expect, it } from 'vitest';
import { clientStalled, describeUpstreamFailure, upstreamTimeout, type Upstream } from '../../../src/proxy/upstream.js';

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
