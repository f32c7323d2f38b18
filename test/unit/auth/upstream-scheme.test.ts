// `--auth upstream`: the gateway checks nothing and lets the registry sign users in; the user name
// its log shows is only what the credentials claim, read without verifying them.
import { describe, expect, it } from 'vitest';
import { claimedUser, createUpstreamScheme } from '../../../src/auth/upstream-scheme.js';

const basic = (text: string): string => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;
const part = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const jwt = (claims: unknown): string => `Bearer ${part({ alg: 'ES256', typ: 'JWT' })}.${part(claims)}.${part('not a signature')}`;

describe('claimedUser', () => {
  it('reads the user part of Basic credentials, never the password', () => {
    expect(claimedUser(basic('alice:s3cret:with colons'))).toBe('alice');
    expect(claimedUser(basic('robot$ci:token'))).toBe('robot$ci');
    expect(claimedUser(`  ${basic('bob:pw')}  `)).toBe('bob');
  });

  it("reads a JWT bearer token's sub, whatever its signature", () => {
    expect(claimedUser(jwt({ iss: 'test', sub: 'alice', aud: 'registry', access: [] }))).toBe('alice');
    expect(claimedUser(jwt({ sub: 'carol' }).replace('Bearer', 'bearer'))).toBe('carol');
  });

  it('answers null for garbage and for names unfit for a log', () => {
    for (const header of [
      undefined,
      '',
      'Basic',
      'Basic !!!',
      basic(':no-user'),
      basic('no-colon'),
      'Bearer opaque-token',
      'Bearer a.b',
      'Bearer a.b.c.d',
      `Bearer ${part('{}')}.${part('not json')}.x`,
      `Bearer ${part('{}')}.${Buffer.from([0xff, 0xfe]).toString('base64url')}.x`,
      `Bearer ${part('{}')}.a+b/.x`,
      jwt({}),
      jwt({ sub: '' }),
      jwt({ sub: 42 }),
      jwt({ sub: 'line\nbreak' }),
      jwt({ sub: 'x'.repeat(257) }),
      jwt(null),
      jwt('alice'),
      `Bearer ${part('{}')}.${'A'.repeat(20_000)}.x`,
      'Digest username="alice"',
    ]) {
      expect(claimedUser(header), String(header)).toBeNull();
    }
  });
});

describe('createUpstreamScheme', () => {
  const scheme = createUpstreamScheme();

  it('forwards credentials, passes the registry\'s challenge and remembers nothing', () => {
    expect(scheme.forwardsCredentials).toBe(true);
    expect(scheme.challenge).toBeNull();
    expect(scheme.recall({ headers: { authorization: basic('alice:pw') }, remoteAddress: '192.0.2.1' })).toBeUndefined();
  });

  it('lets every request through unverified, naming whom it claims to be', async () => {
    const ask = (authorization?: string) => scheme.authenticate({ headers: authorization === undefined ? {} : { authorization }, remoteAddress: '192.0.2.1' });
    expect(await ask()).toEqual({ kind: 'unverified', user: null });
    expect(await ask(basic('alice:wrong password'))).toEqual({ kind: 'unverified', user: 'alice' });
    expect(await ask(jwt({ sub: 'bob' }))).toEqual({ kind: 'unverified', user: 'bob' });
    expect(await ask('Bearer opaque')).toEqual({ kind: 'unverified', user: null });
  });

  it('refuses two Authorization headers (joined by a comma) rather than guess which the registry reads', async () => {
    const outcome = await scheme.authenticate({ headers: { authorization: `${basic('alice:a')}, ${basic('bob:b')}` }, remoteAddress: '192.0.2.1' });
    expect(outcome).toMatchObject({ kind: 'refused', status: 400, code: 'UNSUPPORTED', reason: 'malformed', user: null });
  });
});
