// `--auth token` in front of the real registry, over HTTPS as clients speak it: the Bearer
// challenge, the token service at /token (GET and the OAuth2 POST forms), public pulls with
// private pushes, scopes enforced per request, the access file asked again, refresh tokens that
// end with a password change, forged tokens refused with a log line, and start-up checks.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError, type GatewayError } from '../../src/errors.js';
import { loadGatewaySetup } from '../../src/server/resources.js';
import { ALICE, basicAuthorization, startTestStack, TOKEN_SERVICE, type TestResponse, type TestStack } from '../helpers/gateway.js';
import { jsonLogLines, startGatewayProcess } from '../helpers/gateway-process.js';
import { writeHtpasswd, type HtpasswdUser } from '../helpers/htpasswd.js';
import { API_VERSION, header, pushImage } from '../helpers/registry-api.js';
import { eventually, eventuallyValue } from '../helpers/wait.js';

const BOB: HtpasswdUser = { user: 'bob', password: 'bob-secret', algorithm: 'bcrypt', cost: 4 };
// Guesses passwords, and gets throttled for it.
const DAVE: HtpasswdUser = { user: 'dave', password: 'dave-secret', algorithm: 'bcrypt', cost: 4 };
const POLICY = `rules:
  - users: ["@anonymous"]
    repositories: ["public/*"]
    actions: [pull]
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [bob]
    repositories: ["team/*", "public/*"]
    actions: [pull]
`;
const UNAUTHORIZED_BODY = { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] };

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ tokenAuth: true, access: POLICY, users: [BOB, DAVE], extraArgs: ['--login-attempts', '2'] });
  await pushImage(stack, 'public/hello', 'v1', { headers: { authorization: await bearer('alice', 'repository:public/hello:pull,push') } });
  await pushImage(stack, 'team/app', 'v1', { headers: { authorization: await bearer('alice', 'repository:team/app:pull,push') } });
});
afterAll(() => stack?.stop());

interface TokenAnswer {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
}

/** GET /token as docker asks it, with Basic credentials of a stack user (or none). */
function getToken(query: string, user: string | false = 'alice'): Promise<TestResponse> {
  return stack.request(`/token?service=${TOKEN_SERVICE}&${query}`, { auth: user });
}

/** POST /token with an OAuth2 form, as docker and containerd send it. */
function postToken(form: Record<string, string>): Promise<TestResponse> {
  return stack.request('/token', {
    method: 'POST',
    auth: false,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
}

async function tokenOf(res: TestResponse): Promise<TokenAnswer> {
  expect(res.status, res.text).toBe(200);
  return JSON.parse(res.text) as TokenAnswer;
}

async function bearer(user: string | false, ...scopes: string[]): Promise<string> {
  const answer = await tokenOf(await getToken(scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&'), user));
  return `Bearer ${answer.token}`;
}

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
const withToken = (authorization: string, options: { method?: string } = {}) => ({ ...options, headers: { authorization } });

describe('the challenge', () => {
  it('answers /v2/ without credentials with 401 and a Bearer challenge naming the token service on the origin the client used', async () => {
    const res = await stack.request('/v2/', { auth: false });
    expect(res.status).toBe(401);
    expect(header(res, 'www-authenticate')).toBe(`Bearer realm="https://${stack.host}/token",service="${TOKEN_SERVICE}"`);
    expect(header(res, 'docker-distribution-api-version')).toBe(API_VERSION);
    expect(JSON.parse(res.text)).toEqual(UNAUTHORIZED_BODY);
  });

  it('names the scope the request needs: pull for a read, pull and push for a push, the catalog', async () => {
    const challenge = async (path: string, method = 'GET') => header(await stack.request(path, { auth: false, method }), 'www-authenticate');
    expect(await challenge('/v2/team/app/manifests/v1')).toBe(`Bearer realm="https://${stack.host}/token",service="${TOKEN_SERVICE}",scope="repository:team/app:pull"`);
    expect(await challenge('/v2/team/app/blobs/uploads/', 'POST')).toMatch(/,scope="repository:team\/app:pull,push"$/);
    expect(await challenge('/v2/_catalog')).toMatch(/,scope="registry:catalog:\*"$/);
  });

  it('puts the realm on --public-url when one is set', async () => {
    const publicStack = await startTestStack({ tokenAuth: true, publicUrl: 'https://registry.example.com:5443' });
    try {
      const res = await publicStack.request('/v2/', { auth: false });
      expect(header(res, 'www-authenticate')).toBe(`Bearer realm="https://registry.example.com:5443/token",service="${TOKEN_SERVICE}"`);
    } finally {
      await publicStack.stop();
    }
  });

  it('still signs in Basic credentials sent unasked (curl -u, scripts), and answers a wrong password with the Bearer challenge', async () => {
    expect((await stack.request('/v2/team/app/tags/list')).status).toBe(200);
    const wrong = await stack.request('/v2/', { headers: { authorization: basicAuthorization('bob', 'nope') } });
    expect(wrong.status).toBe(401);
    expect(header(wrong, 'www-authenticate')).toMatch(/^Bearer realm=/);
  });
});

describe('the token service', () => {
  it('gives anyone a token with what @anonymous may do of what was asked, and no refresh token', async () => {
    const answer = await tokenOf(await getToken('scope=repository:public/hello:pull,push&scope=repository:team/app:pull&offline_token=true', false));
    expect(answer.access_token).toBe(answer.token);
    expect(answer.expires_in).toBe(300);
    expect(Math.abs(Date.parse(answer.issued_at) - Date.now())).toBeLessThan(60_000);
    expect(answer).not.toHaveProperty('refresh_token');
    expect(claimsOf(answer.token)).toMatchObject({ sub: '@anonymous', aud: TOKEN_SERVICE, access: [{ type: 'repository', name: 'public/hello', actions: ['pull'] }] });
  });

  it('gives a user what the access file allows them of what was asked, and a refresh token with offline_token=true', async () => {
    const answer = await tokenOf(await getToken('scope=repository:team/app:pull,push,delete&offline_token=true&client_id=docker&account=bob', 'bob'));
    expect(claimsOf(answer.token)).toMatchObject({ sub: 'bob', access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect(answer.refresh_token).toEqual(expect.any(String));
  });

  it('answers a wrong password with 401 and the registry error body, and throttles like /v2/', async () => {
    const wrong = await stack.request('/token?scope=repository:team/app:pull', { headers: { authorization: basicAuthorization('dave', 'guess') } });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.text)).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
    await stack.request('/token', { headers: { authorization: basicAuthorization('dave', 'guess-2') } });
    // --login-attempts 2: the third attempt waits, at /token and on /v2/ alike, even with the right password.
    const throttled = await stack.request('/token', { auth: 'dave' });
    expect(throttled.status).toBe(429);
    expect(Number(header(throttled, 'retry-after'))).toBeGreaterThan(0);
    expect((await stack.request('/v2/', { auth: 'dave' })).status).toBe(429);
  });

  it('takes the OAuth2 password grant (always with a refresh token) and the refresh grant (without a new one: never rotated)', async () => {
    const password = await tokenOf(await postToken({ grant_type: 'password', username: 'alice', password: ALICE.password, service: TOKEN_SERVICE, client_id: 'containerd', scope: 'repository:team/app:pull' }));
    expect(password.refresh_token).toEqual(expect.any(String));
    const refreshed = await tokenOf(await postToken({ grant_type: 'refresh_token', refresh_token: password.refresh_token!, service: TOKEN_SERVICE, scope: 'repository:team/app:pull repository:public/hello:pull' }));
    expect(refreshed).not.toHaveProperty('refresh_token');
    expect(claimsOf(refreshed.token)).toMatchObject({ sub: 'alice', access: [{ name: 'team/app' }, { name: 'public/hello' }] });
    expect((await stack.request('/v2/team/app/tags/list', withToken(`Bearer ${refreshed.token}`))).status).toBe(200);
  });

  it('never takes an access token as a refresh token, nor a refresh token on /v2/', async () => {
    const password = await tokenOf(await postToken({ grant_type: 'password', username: 'alice', password: ALICE.password }));
    const asRefresh = await postToken({ grant_type: 'refresh_token', refresh_token: password.access_token });
    expect(asRefresh.status).toBe(401);
    expect(JSON.parse(asRefresh.text)).toMatchObject({ errors: [{ code: 'UNAUTHORIZED', message: 'refresh token not accepted; log in again' }] });
    const onApi = await stack.request('/v2/', withToken(`Bearer ${password.refresh_token!}`));
    expect(onApi.status).toBe(401);
    expect(header(onApi, 'www-authenticate')).toMatch(/,error="invalid_token"$/);
  });

  it('refuses what is not a token request with 400 and says why: another service, a bad grant, too many scopes; 405 for other methods', async () => {
    const other = await stack.request('/token?service=other.example.com', { auth: false });
    expect(other.status).toBe(400);
    expect(JSON.parse(other.text).errors[0].message).toBe(`this token service is "${TOKEN_SERVICE}", not "other.example.com"`);
    expect((await postToken({ grant_type: 'client_credentials' })).status).toBe(400);
    const many = Array.from({ length: 65 }, (_, i) => `scope=repository:r${i}:pull`).join('&');
    const tooMany = await getToken(many, false);
    expect(tooMany.status).toBe(400);
    expect(JSON.parse(tooMany.text).errors[0].message).toBe('invalid scope: more than 64 scopes in one request');
    const put = await stack.request('/token', { method: 'PUT', auth: false });
    expect(put.status).toBe(405);
    expect(header(put, 'allow')).toBe('GET, POST');
    const notForm = await stack.request('/token', { method: 'POST', auth: false, headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(notForm.status).toBe(415);
    const huge = await stack.request('/token', { method: 'POST', auth: false, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a='.padEnd(20_000, 'x') });
    expect(huge.status).toBe(413);
  });
});

describe('tokens on /v2/', () => {
  it('let anonymous users pull public images and nothing else', async () => {
    const token = await bearer(false, 'repository:public/hello:pull');
    expect((await stack.request('/v2/public/hello/tags/list', withToken(token))).status).toBe(200);
    const push = await stack.request('/v2/public/hello/blobs/uploads/', withToken(token, { method: 'POST' }));
    expect(push.status).toBe(401);
    expect(header(push, 'www-authenticate')).toBe(`Bearer realm="https://${stack.host}/token",service="${TOKEN_SERVICE}",scope="repository:public/hello:pull,push",error="insufficient_scope"`);
    const privateToken = await bearer(false, 'repository:team/app:pull');
    expect((await stack.request('/v2/team/app/tags/list', withToken(privateToken))).status).toBe(401);
  });

  it('hold a token to its scope: a token for repository A is refused on B, a pull token cannot push', async () => {
    const token = await bearer('alice', 'repository:team/app:pull');
    expect((await stack.request('/v2/team/app/tags/list', withToken(token))).status).toBe(200);
    const other = await stack.request('/v2/public/hello/tags/list', withToken(token));
    expect(other.status).toBe(401);
    expect(header(other, 'www-authenticate')).toMatch(/,scope="repository:public\/hello:pull",error="insufficient_scope"$/);
    expect((await stack.request('/v2/team/app/manifests/v1', withToken(token, { method: 'DELETE' }))).status).toBe(401);
    const line = await eventuallyValue(() => stack.logLines().find((l) => l.audit === 'denied' && l.scope === 'repository:team/app:delete'));
    expect(line).toMatchObject({ user: 'alice', reason: 'insufficient scope' });
    // A refusal on record, naming the user and the scope the token lacked.
    const recorded = await eventuallyValue(async () => {
      const lines = (await readFile(join(stack.pki.dir, 'events.jsonl'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
      return lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.reason === 'token lacks scope repository:team/app:delete');
    }, 5_000);
    expect(recorded).toMatchObject({ action: 'denied', user: 'alice', repository: 'team/app', status: 401 });
  });

  it('take a rule removed from the access file into account before the token expires (403)', async () => {
    const token = await bearer('bob', 'repository:team/app:pull');
    expect((await stack.request('/v2/team/app/tags/list', withToken(token))).status).toBe(200);
    await writeFile(join(stack.dir, 'access.yml'), POLICY.replace('"team/*", ', ''));
    try {
      expect(await eventually(async () => (await stack.request('/v2/team/app/tags/list', withToken(token))).status === 403, 10_000)).toBe(true);
    } finally {
      await writeFile(join(stack.dir, 'access.yml'), POLICY);
      await eventually(async () => (await stack.request('/v2/team/app/tags/list', withToken(token))).status === 200, 10_000);
    }
  });

  it('carry their user into the access log', async () => {
    stack.clearLogs();
    await stack.request('/v2/team/app/tags/list', withToken(await bearer('bob', 'repository:team/app:pull')));
    expect(await eventuallyValue(() => stack.logLines().find((l) => l.msg === 'request' && l.path === '/v2/team/app/tags/list'))).toMatchObject({ user: 'bob', status: 200 });
  });

  it('filter the catalog to what the token\'s user may pull', async () => {
    const anonymous = await stack.request('/v2/_catalog', withToken(await bearer(false, 'registry:catalog:*')));
    expect(JSON.parse(anonymous.text)).toEqual({ repositories: ['public/hello'] });
    const alice = await stack.request('/v2/_catalog', withToken(await bearer('alice', 'registry:catalog:*')));
    expect(JSON.parse(alice.text).repositories).toEqual(expect.arrayContaining(['public/hello', 'team/app']));
  });
});

describe('revocation', () => {
  it('ends refresh tokens and access tokens within seconds of a password change, and of the user being removed', async () => {
    const carol: HtpasswdUser = { user: 'carol', password: 'carol-secret', algorithm: 'bcrypt', cost: 4 };
    const users = [ALICE, BOB, DAVE];
    await writeHtpasswd(stack.htpasswdFile, [...users, carol]);
    const login = async (password: string) => postToken({ grant_type: 'password', username: 'carol', password, scope: 'repository:public/hello:pull' });
    expect(await eventually(async () => (await login(carol.password)).status === 200, 10_000)).toBe(true);
    const answer = await tokenOf(await login(carol.password));
    const refresh = () => postToken({ grant_type: 'refresh_token', refresh_token: answer.refresh_token! });
    expect((await refresh()).status).toBe(200);

    await writeHtpasswd(stack.htpasswdFile, [...users, { ...carol, password: 'carol-new' }]);
    expect(await eventually(async () => (await refresh()).status === 401, 10_000)).toBe(true);
    expect((await stack.request('/v2/public/hello/tags/list', withToken(`Bearer ${answer.token}`))).status).toBe(401);
    expect(await eventually(() => stack.logLines().some((l) => l.failure === 'refresh token refused: the password of "carol" changed since the token was made'))).toBe(true);

    const renewed = await tokenOf(await login('carol-new'));
    await writeHtpasswd(stack.htpasswdFile, users);
    expect(await eventually(async () => (await postToken({ grant_type: 'refresh_token', refresh_token: renewed.refresh_token! })).status === 401, 10_000)).toBe(true);
  });
});

describe('forged tokens over HTTPS', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (over: Record<string, unknown> = {}) => ({ iss: TOKEN_SERVICE, aud: TOKEN_SERVICE, sub: 'alice', iat: now(), nbf: now(), exp: now() + 300, jti: 'x', access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }], ...over });
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  it('refuses each with 401 and invalid_token, logs why, and never answers 500', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const own = createPrivateKey(await readFile(join(stack.dir, 'token.key'), 'utf8'));
    const kid = (JSON.parse(Buffer.from((await bearer(false)).slice(7).split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    const sign = (payload: Record<string, unknown>, key = own, header: Record<string, unknown> = {}) => new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT', ...header }).sign(key);
    const forged: Array<[string, string, string]> = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`, 'token algorithm not accepted'],
      ['a key the gateway never had', await sign(claims(), stranger), 'token signature does not verify'],
      ['an expired token', await sign(claims({ iat: now() - 900, nbf: now() - 900, exp: now() - 600 })), 'expired token'],
      ['another service', await sign(claims({ aud: 'other.example.com' })), 'token claim aud not accepted'],
      ['a tampered payload', `${(await bearer(false)).slice(7).split('.')[0]}.${b64(claims())}.${(await bearer(false)).split('.')[2]}`, 'token signature does not verify'],
      ['an oversized token', 'a'.repeat(10_000), 'credentials neither Bearer nor Basic'],
      ['a malformed token', 'not a token', 'credentials neither Bearer nor Basic'],
    ];
    for (const [what, token, reason] of forged) {
      stack.clearLogs();
      const res = await stack.request('/v2/team/app/manifests/v1', withToken(`Bearer ${token}`));
      expect(res.status, what).toBe(401);
      expect(header(res, 'www-authenticate'), what).toMatch(/,error="invalid_(token|request)"$/);
      // The access log line is written once the response has closed.
      const line = await eventuallyValue(() => stack.logLines().find((l) => l.msg === 'request' && l.path === '/v2/team/app/manifests/v1'));
      expect(String(line?.failure), what).toContain(reason);
      expect(JSON.stringify(stack.logLines()), what).not.toContain(token.slice(0, 40));
    }
  });
});

describe('start-up', () => {
  it('refuses @anonymous rules with --auth basic, saying why', async () => {
    const argv = ['--upstream', stack.upstreamUrl, '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile, '--access', join(stack.dir, 'access.yml')];
    const err = await loadGatewaySetup(argv, {}).catch((e: unknown) => e);
    expect(isGatewayError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as GatewayError).problems).toEqual([expect.stringMatching(/^--access: .*access\.yml has rules for @anonymous \(requests without credentials\), which only --auth token has/)]);
  });

  it('refuses token options without --auth token, naming them', async () => {
    const err = await loadGatewaySetup(['--upstream', stack.upstreamUrl, '--token-ttl', '60'], {}).catch((e: unknown) => e);
    expect((err as GatewayError).problems).toContain('--token-ttl only apply with --auth token; remove it, or set --auth token');
  });
});

describe('serve --workers 2 --auth token', () => {
  it('has each process accept the tokens the other issued, signed with the one key the first start made', async () => {
    const keyFile = join(stack.dir, 'workers', 'token.key');
    const gateway = await startGatewayProcess(
      ['--workers', '2', '--auth', 'token', '--token-key', keyFile, '--token-service', TOKEN_SERVICE, '--upstream', stack.upstreamUrl,
        '--tls-cert', stack.pki.serverCert, '--tls-key', stack.pki.serverKey, '--htpasswd', stack.htpasswdFile, '--access', join(stack.dir, 'access.yml')],
      { ca: stack.pki.caPem, processes: 2 },
    );
    try {
      // One token, whichever process issued it, then used on new connections, which the two
      // processes share: when both served it, the one that did not issue it accepted it.
      const res = await gateway.request(`/token?service=${TOKEN_SERVICE}&scope=repository:team/app:pull`, { authorization: stack.authorization() });
      expect(res.status).toBe(200);
      const authorization = `Bearer ${(JSON.parse(res.body.toString()) as TokenAnswer).token}`;
      for (let i = 0; i < 40; i++) expect((await gateway.request('/v2/team/app/tags/list', { authorization })).status).toBe(200);
      const served = () => jsonLogLines(gateway.output()).filter((l) => l.msg === 'request' && l.path === '/v2/team/app/tags/list');
      await eventually(() => served().length === 40, 10_000);
      expect(new Set(served().map((l) => l.pid)).size).toBe(2);
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    } finally {
      await gateway.stop();
    }
  });
});
