// Every malformed, foreign or wrong Authorization header gets the registry's 401 challenge (with
// the API-version header, never a 5xx), and the registry behind sees no request for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, startTestStack, type TestStack } from '../helpers/gateway.js';
import { rawTlsRequest } from '../helpers/raw-tls.js';
import { sleep } from '../helpers/wait.js';

const COLON = { user: 'colon', password: 'a:b: c', algorithm: 'bcrypt' as const, cost: 5 };
// U+00E9 precomposed (NFC), as the password was set.
const ACCENT = { user: 'accent', password: 'caf\u00e9-pass', algorithm: 'bcrypt' as const, cost: 5 };

let stack: TestStack;
beforeAll(async () => {
  // Throttling off: this file sends many wrong passwords from one address on purpose.
  stack = await startTestStack({ users: [COLON, ACCENT], extraArgs: ['--login-attempts', '0'] });
});
afterAll(() => stack.stop());

const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64');

/** Requests the registry has logged so far (its access log: one line per request). */
function upstreamRequests(): number {
  return (stack.registry.log().match(/"(GET|HEAD|POST|PUT|PATCH|DELETE) \//g) ?? []).length;
}

async function expectChallenge(authorization: string | undefined): Promise<void> {
  const before = upstreamRequests();
  const res = await stack.request('/v2/', { auth: false, headers: authorization === undefined ? {} : { authorization } });
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toBe('Basic realm="Registry Realm"');
  expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  expect(JSON.parse(res.text)).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
  await sleep(50);
  expect(upstreamRequests()).toBe(before);
}

describe('Authorization header matrix', () => {
  const cases: Array<[string, string | undefined]> = [
    ['no header', undefined],
    ['an empty header', ''],
    ['another scheme (Bearer)', `Bearer ${b64('alice:alice-secret')}`],
    ['another scheme (Digest)', 'Digest username="alice", realm="Registry Realm"'],
    ['Basic with nothing after it', 'Basic'],
    ['characters outside base64', 'Basic YWxp!2U6YWxpY2Utc2VjcmV0'],
    ['base64url instead of base64', `Basic ${b64(Buffer.from([0xfb, 0xff, 0x3a, 0x61])).replace(/\+/g, '-').replace(/\//g, '_')}`],
    ['missing padding', `Basic ${b64('alice:alice-secre').replace(/=+$/, '')}`],
    ['padding in the middle', 'Basic YWxp=2U6YWxpY2Utc2VjcmV0'],
    ['junk after the token', `Basic ${b64('alice:alice-secret')} extra`],
    ['no colon', `Basic ${b64('alice')}`],
    ['an empty user', `Basic ${b64(':alice-secret')}`],
    ['invalid UTF-8', `Basic ${b64(Buffer.from([0x61, 0x6c, 0x69, 0x63, 0x65, 0x3a, 0xc3, 0x28]))}`],
    ['a control character in the user', `Basic ${b64('ali\u0000ce:alice-secret')}`],
    ['a wrong password', basicAuthorization('alice', 'alice-secreT')],
    ['an unknown user', basicAuthorization('mallory', 'alice-secret')],
    ['the password with a trailing newline', basicAuthorization('alice', 'alice-secret\n')],
    ['a colon password cut at its first colon', basicAuthorization('colon', 'a')],
    ['the NFD spelling of an NFC password', basicAuthorization('accent', ACCENT.password.normalize('NFD'))],
    ['a wrong password of 100 bytes', basicAuthorization('alice', 'x'.repeat(100))],
    ['a 16 KB header', `Basic ${b64(`alice:${'y'.repeat(12_000)}`)}`],
  ];
  for (const [name, header] of cases) {
    it(`challenges ${name}`, () => expectChallenge(header));
  }

  it('lets in the right passwords, including one with colons and spaces and one with an accent as set', async () => {
    const before = upstreamRequests();
    expect((await stack.request('/v2/', { auth: 'alice' })).status).toBe(200);
    await sleep(50);
    expect(upstreamRequests()).toBe(before + 1); // the count the refusals are checked with works
    expect((await stack.request('/v2/', { auth: false, headers: { authorization: basicAuthorization(COLON.user, COLON.password) } })).status).toBe(200);
    expect((await stack.request('/v2/', { auth: false, headers: { authorization: basicAuthorization(ACCENT.user, ACCENT.password) } })).status).toBe(200);
  });

  it('challenges two Authorization headers, even when both are right', async () => {
    const right = basicAuthorization('alice', 'alice-secret');
    const before = upstreamRequests();
    const res = await rawTlsRequest(
      stack.gateway.port,
      stack.pki.caPem,
      `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${right}\r\nAuthorization: ${right}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(401);
    expect(res.text.toLowerCase()).toContain('docker-distribution-api-version: registry/2.0');
    expect(upstreamRequests()).toBe(before);
  });

  it('refuses a header too large to be credentials without a 5xx', async () => {
    const res = await rawTlsRequest(
      stack.gateway.port,
      stack.pki.caPem,
      `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic ${'A'.repeat(40_000)}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(431);
  });
});
