// Which closed requests become events: manifest pushes and deletes the registry accepted, and
// refusals worth recording; nothing else.
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { eventFromRequest, uiEvent } from '../../../src/events/capture.js';
import { createContext, type RequestContext } from '../../../src/registry/context.js';
import { failure, type Failure } from '../../../src/registry/failure.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const OTHER_DIGEST = `sha256:${'b'.repeat(64)}`;
const NOW = new Date('2024-05-06T07:08:09.123Z');

interface Closed {
  readonly status: number;
  readonly headers?: IncomingHttpHeaders;
  readonly responseHeaders?: Record<string, string>;
  readonly forwarded?: boolean;
  readonly user?: string | null;
  readonly failure?: Failure | null;
  readonly bytesIn?: number;
}

/** The context of a request whose response has closed, as the pipeline leaves it. */
function closedRequest(method: string, url: string, closed: Closed): RequestContext {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: '192.0.2.7' });
  const req = new IncomingMessage(socket);
  req.method = method;
  req.url = url;
  req.headers = closed.headers ?? {};
  const res = new ServerResponse(req);
  res.statusCode = closed.status;
  for (const [name, value] of Object.entries(closed.responseHeaders ?? {})) res.setHeader(name, value);
  const ctx = createContext(req, res);
  ctx.forwarded = closed.forwarded ?? true;
  ctx.user = closed.user === undefined ? 'alice' : closed.user;
  ctx.failure = closed.failure ?? null;
  ctx.bytesIn = closed.bytesIn ?? 0;
  return ctx;
}

describe('eventFromRequest', () => {
  it('records a token request whose credentials were refused (docker login with a wrong password, --auth token), and no other', () => {
    const refused = closedRequest('POST', '/token', { status: 401, user: 'bob', failure: failure('auth', 'authentication mismatch'), forwarded: false });
    expect(eventFromRequest(refused, NOW)).toMatchObject({ action: 'denied', user: 'bob', repository: null, path: '/token', status: 401, reason: 'authentication mismatch' });
    expect(eventFromRequest(closedRequest('GET', '/token?scope=repository:a:pull', { status: 200, user: 'bob', forwarded: false }), NOW)).toBeNull();
    expect(eventFromRequest(closedRequest('POST', '/token', { status: 400, user: null, forwarded: false, failure: failure('auth', 'token request refused: grant_type') }), NOW)).toBeNull();
  });

  it('records a manifest pushed by tag, with the digest the registry answered and the request\'s type and size', () => {
    const ctx = closedRequest('PUT', '/v2/team/app/manifests/v1.2?x=1', {
      status: 201,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json; charset=utf-8', 'content-length': '1234' },
      responseHeaders: { 'docker-content-digest': DIGEST },
      bytesIn: 999,
    });
    const event = eventFromRequest(ctx, NOW);
    expect(event).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      timestamp: '2024-05-06T07:08:09.123Z',
      action: 'push',
      repository: 'team/app',
      tag: 'v1.2',
      digest: DIGEST,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: 1234,
      user: 'alice',
      address: '192.0.2.7',
      method: 'PUT',
      path: '/v2/team/app/manifests/v1.2',
      status: 201,
      reason: null,
      via: 'registry',
    });
    expect(eventFromRequest(ctx, NOW)!.id).not.toBe(event!.id);
  });

  it('records a push by digest: no tag, the reference as digest, the bytes counted when no length was declared', () => {
    const ctx = closedRequest('PUT', `/v2/app/manifests/${DIGEST}`, {
      status: 201,
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json', 'transfer-encoding': 'chunked' },
      bytesIn: 777,
    });
    expect(eventFromRequest(ctx, NOW)).toMatchObject({ action: 'push', repository: 'app', tag: null, digest: DIGEST, size: 777, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
  });

  it('records no push the registry did not accept, or that was never forwarded', () => {
    expect(eventFromRequest(closedRequest('PUT', '/v2/app/manifests/v1', { status: 400 }), NOW)).toBeNull();
    expect(eventFromRequest(closedRequest('PUT', '/v2/app/manifests/v1', { status: 201, forwarded: false }), NOW)).toBeNull();
  });

  it('records a manifest delete answered 202, by tag or by digest', () => {
    const byDigest = closedRequest('DELETE', `/v2/team/app/manifests/${DIGEST}`, { status: 202, user: 'bob' });
    expect(eventFromRequest(byDigest, NOW)).toMatchObject({
      action: 'delete',
      repository: 'team/app',
      tag: null,
      digest: DIGEST,
      mediaType: null,
      size: null,
      user: 'bob',
      method: 'DELETE',
      status: 202,
    });
    const byTag = closedRequest('DELETE', '/v2/team/app/manifests/old', { status: 202, responseHeaders: { 'docker-content-digest': OTHER_DIGEST } });
    expect(eventFromRequest(byTag, NOW)).toMatchObject({ action: 'delete', tag: 'old', digest: OTHER_DIGEST });
  });

  it('records a 403 as denied, with the repository and why', () => {
    const ctx = closedRequest('GET', '/v2/secret/app/manifests/latest', {
      status: 403,
      forwarded: false,
      user: 'mallory',
      failure: failure('denied', 'access denied: pull on secret/app'),
    });
    expect(eventFromRequest(ctx, NOW)).toMatchObject({
      action: 'denied',
      repository: 'secret/app',
      tag: null,
      digest: null,
      user: 'mallory',
      method: 'GET',
      path: '/v2/secret/app/manifests/latest',
      status: 403,
      reason: 'access denied: pull on secret/app',
      via: 'registry',
    });
  });

  it('records a 401 to credentials that were checked and refused (a wrong password), naming the user they claimed', () => {
    const ctx = closedRequest('GET', '/v2/', {
      status: 401,
      forwarded: false,
      user: 'alice',
      headers: { authorization: 'Basic YWxpY2U6d3Jvbmc=' },
      failure: failure('auth', 'wrong password for alice'),
    });
    expect(eventFromRequest(ctx, NOW)).toMatchObject({ action: 'denied', repository: null, user: 'alice', status: 401, reason: 'wrong password for alice' });
  });

  it('records nothing for the 401 a client gets before it signs in, nor for a throttled 429', () => {
    const challenge = closedRequest('GET', '/v2/', { status: 401, forwarded: false, user: null, failure: failure('auth', 'no credentials') });
    expect(eventFromRequest(challenge, NOW)).toBeNull();
    const throttled = closedRequest('GET', '/v2/', {
      status: 429,
      forwarded: false,
      headers: { authorization: 'Basic YWxpY2U6d3Jvbmc=' },
      failure: failure('auth', 'too many failed sign-ins'),
    });
    expect(eventFromRequest(throttled, NOW)).toBeNull();
  });

  it('records nothing for pulls, blobs, pings, 404s and upstream errors', () => {
    const none = [
      closedRequest('GET', '/v2/app/manifests/latest', { status: 200 }),
      closedRequest('HEAD', '/v2/app/manifests/latest', { status: 200 }),
      closedRequest('GET', `/v2/app/blobs/${DIGEST}`, { status: 200 }),
      closedRequest('PUT', '/v2/app/blobs/uploads/abc-123', { status: 201 }),
      closedRequest('GET', '/v2/', { status: 200 }),
      closedRequest('GET', '/v2/app/manifests/missing', { status: 404 }),
      closedRequest('PUT', '/v2/app/manifests/v1', { status: 502, failure: failure('upstream-unavailable', 'connect ECONNREFUSED') }),
    ];
    expect(none.map((ctx) => eventFromRequest(ctx, NOW))).toEqual(none.map(() => null));
  });
});

describe('uiEvent', () => {
  it('makes a delete of the web UI from its request, with the registry\'s 202', () => {
    const ctx = closedRequest('POST', '/ui/delete', { status: 200, forwarded: false, user: 'carol' });
    expect(uiEvent(ctx, { action: 'delete', repository: 'team/app', tag: 'v1', digest: DIGEST }, NOW)).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      timestamp: '2024-05-06T07:08:09.123Z',
      action: 'delete',
      repository: 'team/app',
      tag: 'v1',
      digest: DIGEST,
      mediaType: null,
      size: null,
      user: 'carol',
      address: '192.0.2.7',
      method: 'POST',
      path: '/ui/delete',
      status: 202,
      reason: null,
      via: 'ui',
    });
  });

  it('makes a refused sign-in 401 and a refused delete 403', () => {
    const signIn = closedRequest('POST', '/ui/login', { status: 200, forwarded: false, user: 'eve', failure: failure('auth', 'web UI sign-in: wrong password') });
    expect(uiEvent(signIn, { action: 'denied' }, NOW)).toMatchObject({ action: 'denied', repository: null, status: 401, reason: 'web UI sign-in: wrong password', via: 'ui' });
    const del = closedRequest('POST', '/ui/delete', { status: 200, forwarded: false, user: 'eve' });
    expect(uiEvent(del, { action: 'denied', repository: 'app', reason: 'not granted' }, NOW)).toMatchObject({ status: 403, repository: 'app', reason: 'not granted' });
  });
});
