// The gateway's log after a run of requests with passwords, right and wrong: one access line per
// request with the fields operators need, and no credential anywhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestResponse, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { header, randomBlob, sha256, withQuery } from '../helpers/registry-api.js';
import { eventually } from '../helpers/wait.js';

const CAROL: HtpasswdUser = { user: 'carol', password: 'my Authorization is: carol-pw-7781', algorithm: 'apr1' };
const DAVE: HtpasswdUser = { user: 'dave', password: 'dave-sha-pw-5521', algorithm: 'sha' };

interface Sent {
  method: string;
  path: string;
  status: number;
  user: string | null;
  upstreamStatus: number | null;
  bytesIn?: number;
  bytesOut?: number;
}

describe('gateway logs', () => {
  let stack: TestStack;
  const sent: Sent[] = [];
  /** Every credential-bearing string a client sent: passwords, header values and their base64. */
  const secrets: string[] = [];
  const blob = randomBlob(12_345);

  const send = async (
    expected: Sent,
    options: { authorization?: string | false; headers?: Record<string, string>; body?: Buffer; query?: string } = {},
  ): Promise<TestResponse> => {
    const headers: Record<string, string> = { ...options.headers };
    if (typeof options.authorization === 'string') {
      headers.authorization = options.authorization;
      secrets.push(options.authorization, options.authorization.replace(/^\S+\s+/, ''));
    }
    const res = await stack.request(`${expected.path}${options.query ?? ''}`, {
      method: expected.method,
      headers,
      ...(options.authorization === false ? { auth: false } : {}),
      ...(options.body === undefined ? {} : { body: options.body }),
    });
    expect(res.status, `${expected.method} ${expected.path}: ${res.text}`).toBe(expected.status);
    sent.push(expected);
    return res;
  };

  beforeAll(async () => {
    stack = await startTestStack({ users: [CAROL, DAVE], logLevel: 'trace' });
    secrets.push(...stack.users.map((u) => u.password));
    const alice = stack.authorization('alice');
    const wrongAlice = basicAuthorization('alice', 'Alice-Wrong-Pass-3310');
    const carol = stack.authorization('carol');
    const wrongCarol = basicAuthorization('carol', 'authorization-guess-4417');
    const dave = stack.authorization('dave');
    const unknown = basicAuthorization('mallory', 'mallory-pass-9034');
    secrets.push('Alice-Wrong-Pass-3310', 'authorization-guess-4417', 'mallory-pass-9034');

    await send({ method: 'GET', path: '/v2/', status: 200, user: 'alice', upstreamStatus: 200 }, { authorization: alice });
    await send({ method: 'GET', path: '/v2/logs/a/tags/list', status: 401, user: 'alice', upstreamStatus: null }, { authorization: wrongAlice });
    await send({ method: 'GET', path: '/v2/_catalog', status: 200, user: 'carol', upstreamStatus: 200 }, { authorization: carol });
    await send({ method: 'HEAD', path: '/v2/', status: 401, user: 'carol', upstreamStatus: null }, { authorization: wrongCarol });
    await send({ method: 'GET', path: '/v2/logs/d/tags/list', status: 404, user: 'dave', upstreamStatus: 404 }, { authorization: dave });
    await send({ method: 'GET', path: '/v2/logs/m/tags/list', status: 401, user: 'mallory', upstreamStatus: null }, { authorization: unknown });
    await send({ method: 'GET', path: '/v2/logs/none/tags/list', status: 401, user: null, upstreamStatus: null }, { authorization: false });
    await send({ method: 'GET', path: '/v2/logs/bad/tags/list', status: 401, user: null, upstreamStatus: null }, {
      authorization: 'Basic !!not-base64!!',
    });
    // A proxy credential the client should never have sent: dropped, and not logged either.
    const proxyCredential = basicAuthorization('proxyuser', 'proxy-pw-6602');
    secrets.push(proxyCredential, proxyCredential.slice('Basic '.length), 'proxy-pw-6602');
    await send({ method: 'GET', path: '/v2/', status: 200, user: 'alice', upstreamStatus: 200 }, {
      authorization: alice,
      headers: { 'proxy-authorization': proxyCredential },
    });

    // An upload and a read, to see the byte counts.
    const post = await send(
      { method: 'POST', path: '/v2/logs/blob/blobs/uploads/', status: 202, user: 'alice', upstreamStatus: 202, bytesIn: 0 },
      { authorization: alice },
    );
    const location = header(post, 'location');
    const [uploadPath, uploadQuery] = location.split('?') as [string, string];
    await send(
      { method: 'PUT', path: uploadPath, status: 201, user: 'alice', upstreamStatus: 201, bytesIn: blob.length },
      { authorization: alice, body: blob, query: withQuery(`?${uploadQuery}`, 'digest', sha256(blob)), headers: { 'content-type': 'application/octet-stream' } },
    );
    await send(
      { method: 'GET', path: `/v2/logs/blob/blobs/${sha256(blob)}`, status: 200, user: 'alice', upstreamStatus: 200, bytesIn: 0, bytesOut: blob.length },
      { authorization: alice },
    );
    await send({ method: 'GET', path: '/healthz', status: 200, user: null, upstreamStatus: null }, { authorization: false });
    await send({ method: 'GET', path: '/nowhere', status: 404, user: null, upstreamStatus: null }, { authorization: carol });

    const accessLines = (): number => stack.logLines().filter((l) => l.msg === 'request').length;
    await eventually(() => accessLines() >= sent.length);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('never contains a password, an Authorization value or its base64', () => {
    const text = stack.logLines().map((l) => JSON.stringify(l));
    expect(text.length).toBeGreaterThanOrEqual(sent.length);
    for (const secret of secrets) {
      expect(text.filter((line) => line.includes(secret)), `log lines containing ${JSON.stringify(secret)}`).toEqual([]);
    }
  });

  it('never contains the word "authorization", in any case', () => {
    const lines = stack.logLines().map((l) => JSON.stringify(l));
    expect(lines.filter((line) => /authorization/i.test(line))).toEqual([]);
  });

  it('has exactly one access line per request, with every field', () => {
    const access = stack.logLines().filter((l) => l.msg === 'request');
    expect(access).toHaveLength(sent.length);
    for (const s of sent) {
      const matching = access.filter((l) => l.method === s.method && l.path === s.path && l.status === s.status && l.user === s.user);
      expect(matching, `access lines for ${s.method} ${s.path} ${s.status} ${s.user}`).toHaveLength(
        sent.filter((o) => o.method === s.method && o.path === s.path && o.status === s.status && o.user === s.user).length,
      );
      for (const line of matching) {
        expect(line.upstreamStatus).toBe(s.upstreamStatus);
        expect(line.remote).toBe('127.0.0.1');
        expect(typeof line.durationMs).toBe('number');
        expect(line.durationMs as number).toBeGreaterThanOrEqual(0);
        expect(line.durationMs as number).toBeLessThan(30_000);
        expect(typeof line.bytesIn).toBe('number');
        expect(typeof line.bytesOut).toBe('number');
        if (s.bytesIn !== undefined) expect(line.bytesIn).toBe(s.bytesIn);
        if (s.bytesOut !== undefined) expect(line.bytesOut).toBe(s.bytesOut);
      }
    }
  });

  it('logs paths without their query (upload state, digests)', () => {
    const access = stack.logLines().filter((l) => l.msg === 'request');
    for (const line of access) expect(String(line.path)).not.toContain('?');
    expect(stack.logLines().map((l) => JSON.stringify(l)).join('\n')).not.toContain('_state');
  });
});

describe("access lines of the gateway's own answers", () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('count the body bytes sent (401, health, 404) in bytesOut', async () => {
    const paths = ['/v2/own/answer/tags/list', '/healthz', '/not-here'];
    const answers: TestResponse[] = [];
    for (const path of paths) answers.push(await stack.request(path, { auth: false }));
    expect(answers.map((r) => r.status)).toEqual([401, 200, 404]);
    const access = () => stack.logLines().filter((l) => l.msg === 'request');
    expect(await eventually(() => access().length === paths.length)).toBe(true);
    const logged = paths.map((path) => access().find((l) => l.path === path));
    expect(logged.map((l) => ({ path: l?.path, bytesOut: l?.bytesOut }))).toEqual(
      paths.map((path, i) => ({ path, bytesOut: answers[i]!.body.length })),
    );
  });
});
