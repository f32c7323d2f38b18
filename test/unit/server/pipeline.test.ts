// The request pipeline's own answers (health, routing, the auth challenge), driven through
// supertest over plain HTTP: no TLS and no upstream needed for what the gateway answers itself.
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../src/auth/authenticator.js';
import { createBasicScheme } from '../../../src/auth/basic-scheme.js';
import { createLoginThrottle } from '../../../src/auth/throttle.js';
import { createUpstreamScheme } from '../../../src/auth/upstream-scheme.js';
import { parseHtpasswd } from '../../../src/auth/htpasswd.js';
import { createUpstream } from '../../../src/proxy/upstream.js';
import { createRequestHandler } from '../../../src/server/pipeline.js';

// Written by Apache's `htpasswd -B -C 5 -b f alice alice-secret`.
const { users } = parseHtpasswd('alice:$2y$05$Y3qDedI95UeJkr5zvKpqUuZ3j06Vuwe8K2MAUrtASyp73VKSkLlJC\n', 'htpasswd');
const authenticator = createAuthenticator({ users });
const log = pino({ level: 'silent' });
// Nothing listens here: these tests must never reach the upstream.
const upstream = createUpstream(new URL('http://127.0.0.1:9'), 1000);
// Throttling off here, so the wrong passwords below never add up; throttling has its own tests.
const auth = createBasicScheme({ authenticator, throttle: createLoginThrottle({ freeFailures: 0, maxDelayMs: 1000 }), realm: 'Test Realm' });
const handler = createRequestHandler({
  auth,
  forwarding: { upstream, rewrite: { publicOrigin: null, upstreamOrigins: new Set() }, challenge: auth.challenge, forwardedHost: 'localhost', log, reclaim: { relayed: () => undefined }, manifests: null },
  log,
  hstsMaxAge: 600,
  draining: () => false,
  metrics: null,
});
afterAll(async () => {
  upstream.close();
  await authenticator.close();
});

const UNAUTHORIZED = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}';

describe('request pipeline', () => {
  it('answers /healthz without credentials', async () => {
    const res = await request(handler).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('sends Strict-Transport-Security on every answer', async () => {
    expect((await request(handler).get('/healthz')).headers['strict-transport-security']).toBe('max-age=600');
    expect((await request(handler).get('/v2/')).headers['strict-transport-security']).toBe('max-age=600');
  });

  it('answers 404 outside /v2/ and the health endpoints', async () => {
    expect((await request(handler).get('/').set('authorization', 'Basic YWxpY2U6YWxpY2Utc2VjcmV0')).status).toBe(404);
    expect((await request(handler).get('/v2x/')).status).toBe(404);
  });

  it('challenges a registry request without credentials the way registry clients expect', async () => {
    const res = await request(handler).get('/v2/');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="Test Realm"');
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(res.text).toBe(UNAUTHORIZED);
  });

  it('challenges a wrong password, an unknown user and a malformed header alike', async () => {
    for (const authorization of ['Basic YWxpY2U6d3Jvbmc=', 'Basic bWFsbG9yeTphbGljZS1zZWNyZXQ=', 'Basic !!!', 'Bearer abc']) {
      const res = await request(handler).get('/v2/_catalog').set('authorization', authorization);
      expect(res.status).toBe(401);
      expect(res.text).toBe(UNAUTHORIZED);
    }
  });

  it('closes the connection when refusing an upload whose body it will not read', async () => {
    const res = await request(handler).patch('/v2/a/blobs/uploads/x').send(Buffer.alloc(1024));
    expect(res.status).toBe(401);
    expect(res.headers.connection).toBe('close');
  });

  it('passes valid credentials on to the upstream (here: unreachable, so 502)', async () => {
    const res = await request(handler).get('/v2/').set('authorization', 'Basic YWxpY2U6YWxpY2Utc2VjcmV0');
    expect(res.status).toBe(502);
    expect(res.body.errors[0].code).toBe('UNAVAILABLE');
  });
});

describe('request pipeline with the registry signing users in itself (--auth upstream)', () => {
  const upstreamAuth = createUpstreamScheme();
  const passing = createRequestHandler({
    auth: upstreamAuth,
    forwarding: { upstream, rewrite: { publicOrigin: null, upstreamOrigins: new Set() }, challenge: upstreamAuth.challenge, forwardedHost: 'localhost', log, reclaim: { relayed: () => undefined }, manifests: null },
    log,
    hstsMaxAge: 600,
    draining: () => false,
    metrics: null,
  });

  it('still answers /healthz itself', async () => {
    const res = await request(passing).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('forwards every other path, without credentials too: nothing listens upstream, so 502', async () => {
    for (const path of ['/v2/', '/token?service=registry&scope=repository:a:pull', '/service/token', '/']) {
      const res = await request(passing).get(path);
      expect(res.status, path).toBe(502);
      expect(res.headers['www-authenticate'], path).toBeUndefined();
    }
  });

  it('refuses /V2/ before the upstream, as in the other mode', async () => {
    expect((await request(passing).get('/V2/')).status).toBe(400);
  });
});
