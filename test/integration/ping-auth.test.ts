// The API root (`GET /v2/`) through the gateway: credentials checked at the gateway, the registry's
// own challenge replaced by the gateway's Basic one, and credentials never passed on.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { API_VERSION, header } from '../helpers/registry-api.js';
import { eventually } from '../helpers/wait.js';
import { headerNames, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstreams.js';

const UNAUTHORIZED_BODY = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}';

describe('GET /v2/ against the real registry', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers 200 with the API version header when the credentials are right', async () => {
    const res = await stack.request('/v2/');
    expect(res.status).toBe(200);
    expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(JSON.parse(res.text)).toEqual({});
  });

  const refusals: Array<[string, () => string | false]> = [
    ['no credentials', () => false],
    ['a wrong password', () => basicAuthorization('alice', 'not-alice-secret')],
    ['an unknown user', () => basicAuthorization('mallory', 'alice-secret')],
    ['a Bearer token', () => 'Bearer abc.def.ghi'],
  ];
  for (const [what, authorization] of refusals) {
    it(`answers 401 with the gateway's Basic challenge for ${what}`, async () => {
      const value = authorization();
      const res = await stack.request('/v2/', value === false ? { auth: false } : { headers: { authorization: value } });
      expect(res.status).toBe(401);
      expect(header(res, 'www-authenticate')).toBe('Basic realm="Registry Realm"');
      expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
      expect(header(res, 'content-type')).toMatch(/^application\/json/);
      expect(res.text).toBe(UNAUTHORIZED_BODY);
    });
  }

  it('answers 401 the same way on a repository path, and with no body to HEAD', async () => {
    const get = await stack.request('/v2/team/app/tags/list', { auth: false });
    expect(get.status).toBe(401);
    expect(get.text).toBe(UNAUTHORIZED_BODY);
    expect(header(get, 'www-authenticate')).toBe('Basic realm="Registry Realm"');
    const head = await stack.request('/v2/', { method: 'HEAD', auth: false });
    expect(head.status).toBe(401);
    expect(header(head, 'www-authenticate')).toBe('Basic realm="Registry Realm"');
    expect(head.body.length).toBe(0);
  });

  it('does not let a refused request reach the registry, and does let an accepted one', async () => {
    // The registry logs every request URI it serves; unique repository names find them there.
    const refused = `refused-${randomBytes(6).toString('hex')}`;
    const accepted = `accepted-${randomBytes(6).toString('hex')}`;
    const wrong = await stack.request(`/v2/${refused}/tags/list`, { headers: { authorization: basicAuthorization('alice', 'wrong') } });
    expect(wrong.status).toBe(401);
    const none = await stack.request(`/v2/${refused}/blobs/uploads/`, { method: 'POST', auth: false, body: 'x' });
    expect(none.status).toBe(401);
    const good = await stack.request(`/v2/${accepted}/tags/list`);
    // The registry's own answer for a repository that does not exist.
    expect(good.status).toBe(404);
    expect(JSON.parse(good.text).errors[0].code).toBe('NAME_UNKNOWN');
    expect(await eventually(() => stack.registry.log().includes(accepted))).toBe(true);
    expect(stack.registry.log()).not.toContain(refused);
  });
});

describe('GET /v2/ with a custom --realm', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ realm: 'Acme Images (staging)' });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('names that realm in the challenge', async () => {
    const res = await stack.request('/v2/', { headers: { authorization: basicAuthorization('alice', 'nope') } });
    expect(res.status).toBe(401);
    expect(header(res, 'www-authenticate')).toBe('Basic realm="Acme Images (staging)"');
    expect(res.text).toBe(UNAUTHORIZED_BODY);
    expect((await stack.request('/v2/')).status).toBe(200);
  });
});

// The real registry does not log request headers: a recording upstream shows what reaches it.
describe('credentials and challenges between the gateway and its upstream', () => {
  let upstream: RecordingUpstream;
  let stack: TestStack;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    stack = await startTestStack({ realm: 'Gateway Realm', upstream: upstream.url });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.stop();
  });

  it('forwards an accepted request without its Authorization header', async () => {
    upstream.requests.length = 0;
    const res = await stack.request('/v2/');
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0]!;
    expect(seen.url).toBe('/v2/');
    expect(headerNames(seen)).not.toContain('authorization');
    expect(seen.rawHeaders.join('\n')).not.toContain(stack.authorization().slice('Basic '.length));
  });

  it("replaces the upstream's own challenge (say, a token server) with the gateway's Basic one", async () => {
    upstream.respondWith((_req, res) => {
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': 'Bearer realm="http://auth.internal:5001/token",service="registry.internal"',
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}');
    });
    const res = await stack.request('/v2/team/app/tags/list');
    expect(res.status).toBe(401);
    expect(header(res, 'www-authenticate')).toBe('Basic realm="Gateway Realm"');
    expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
  });
});
