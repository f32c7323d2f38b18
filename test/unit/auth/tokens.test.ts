// The gateway's tokens: made on first start, signed and checked by jose, and every forgery and
// misuse a holder of a token (or of nothing) could try refused with a reason fit for the log.
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTokenKeys, previousKeyFile, type TokenKeys } from '../../../src/auth/token-keys.js';
import { createTokens, type Tokens } from '../../../src/auth/tokens.js';
import { ANONYMOUS, parseScopes, type Grant } from '../../../src/registry/grant.js';

const SERVICE = 'registry.example.com';
const grantOf = (...scopes: string[]): Grant => (parseScopes(scopes) as { requested: Grant }).requested;
const PULL_APP = grantOf('repository:team/app:pull');

let dir: string;
let keys: TokenKeys;
// The user set in force: name -> hash. Tests change it as an htpasswd reload would.
const hashes = new Map([['alice', '$2y$05$aliceHASHaliceHASHaliceHASHaliceHASHaliceHASHalice'], ['bob', '{SHA}bobhash=']]);
let tokens: Tokens;

async function open(file: string): Promise<TokenKeys> {
  const opened = await openTokenKeys(file, '--token-key', { missing: 'make' });
  if (opened.keys === null) throw new Error(opened.problems.join('\n'));
  return opened.keys;
}
const make = (k: TokenKeys, overrides: Partial<Parameters<typeof createTokens>[0]> = {}) =>
  createTokens({ keys: k, service: SERVICE, accessTtlS: 300, refreshTtlS: 3600, hashOf: (user) => hashes.get(user), ...overrides });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-tokens-'));
  keys = await open(join(dir, 'certs', 'token.key'));
  tokens = make(keys);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A token with the gateway's own key and claims as given (for claims the gateway would never set itself). */
async function signed(claims: Record<string, unknown>, header: Record<string, unknown> = {}, key = keys.signing.key): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: SERVICE, aud: SERVICE, sub: 'alice', iat: now, nbf: now, exp: now + 300, jti: 'j1', access: [], ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: keys.signing.kid, typ: 'JWT', ...header })
    .sign(key);
}

describe('the token key', () => {
  it('is made on first start as an EC P-256 key only its owner can read, in a folder only its owner can enter', async () => {
    expect((await stat(keys.file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'certs'))).mode & 0o777).toBe(0o700);
    expect(keys.made).toBe(true);
    expect(keys.signing.alg).toBe('ES256');
    expect(await readFile(keys.file, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('is read again, not replaced, on the next start: tokens made before the restart still verify', async () => {
    const before = await tokens.issueAccess('alice', PULL_APP);
    const again = await open(keys.file);
    expect(again.made).toBe(false);
    expect(again.signing.kid).toBe(keys.signing.kid);
    expect(await make(again).verifyAccess(before.token)).toMatchObject({ ok: true, value: { user: 'alice' } });
  });

  it('names the option and the file when the key is missing and may not be made, or is no key the gateway signs with', async () => {
    const missing = join(dir, 'none.key');
    expect(await openTokenKeys(missing, '--token-key', { missing: 'problem' })).toEqual({ keys: null, problems: [expect.stringMatching(new RegExp(`^--token-key: ${missing} does not exist; start the gateway once`))] });
    const notPem = join(dir, 'not.key');
    await writeFile(notPem, 'hello');
    expect((await openTokenKeys(notPem, 'GATEWAY_TOKEN_KEY', { missing: 'make' })).problems).toEqual([`GATEWAY_TOKEN_KEY: ${notPem}: not a PEM private key`]);
    const p384 = join(dir, 'p384.key');
    await writeFile(p384, generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect((await openTokenKeys(p384, '--token-key', { missing: 'make' })).problems).toEqual([expect.stringContaining('a ec key on secp384r1; token keys are EC P-256, RSA of 2048 bits or more, or Ed25519')]);
  });

  it('rotates: after the key is moved to FILE.previous, a new key signs and the previous key\'s tokens stay valid until they expire', async () => {
    const file = join(dir, 'rotate', 'token.key');
    const first = await open(file);
    const old = await make(first).issueAccess('alice', PULL_APP);
    await rename(file, previousKeyFile(file));
    const second = await open(file);
    expect(second.signing.kid).not.toBe(first.signing.kid);
    expect(second.verifying.map((k) => k.kid)).toEqual([second.signing.kid, first.signing.kid]);
    const rotated = make(second);
    expect(await rotated.verifyAccess(old.token)).toMatchObject({ ok: true });
    const fresh = await rotated.issueAccess('alice', PULL_APP);
    expect(JSON.parse(Buffer.from(fresh.token.split('.')[0]!, 'base64url').toString()).kid).toBe(second.signing.kid);
    // Once FILE.previous is removed, the previous key's tokens are refused.
    await rm(previousKeyFile(file));
    expect(await make(await open(file)).verifyAccess(old.token)).toEqual({ ok: false, reason: 'token signed with a key the gateway does not hold' });
  });
});

describe('access tokens', () => {
  it('carry the spec\'s claims: iss, sub, aud, exp, nbf, iat, jti, access; and verify to the user and the grant', async () => {
    const issued = await tokens.issueAccess('alice', PULL_APP);
    const [header, payload] = issued.token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
    expect(header).toEqual({ alg: 'ES256', kid: keys.signing.kid, typ: 'JWT' });
    expect(payload).toMatchObject({ iss: SERVICE, sub: 'alice', aud: SERVICE, access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect(payload.exp - payload.iat).toBe(300);
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(issued.expiresIn).toBe(300);
    const verified = await tokens.verifyAccess(issued.token);
    expect(verified).toMatchObject({ ok: true, value: { user: 'alice', expiresAt: payload.exp * 1000 } });
    expect(verified.ok && [...verified.value.grant.repositories.get('team/app')!]).toEqual(['pull']);
  });

  it('are made for the anonymous principal without naming any user entry', async () => {
    const issued = await tokens.issueAccess(ANONYMOUS, grantOf('repository:public/x:pull'));
    expect(JSON.parse(Buffer.from(issued.token.split('.')[1]!, 'base64url').toString())).not.toHaveProperty('uh');
    expect(await tokens.verifyAccess(issued.token)).toMatchObject({ ok: true, value: { user: ANONYMOUS, binding: null } });
  });

  it('end when the user\'s password changes or the user is removed', async () => {
    const issued = await tokens.issueAccess('bob', PULL_APP);
    hashes.set('bob', '{SHA}newhash=');
    expect(await tokens.verifyAccess(issued.token)).toEqual({ ok: false, reason: 'the password of "bob" changed since the token was made' });
    const again = await tokens.issueAccess('bob', PULL_APP);
    hashes.delete('bob');
    expect(await tokens.verifyAccess(again.token)).toEqual({ ok: false, reason: 'user "bob" no longer exists' });
    hashes.set('bob', '{SHA}bobhash=');
  });
});

describe('forged and misused tokens, each refused with its reason', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    ['alg none', async () => new UnsecuredJWT({ iss: SERVICE, aud: SERVICE, sub: 'alice', access: [] }).setIssuedAt().setExpirationTime('5m').encode(), /^(token algorithm not accepted|malformed token.*)$/],
    [
      'HS256 signed with the public key as the secret',
      async () => {
        const secret = JSON.stringify(keys.verifying[0]); // what anybody can know of the key
        const head = Buffer.from(JSON.stringify({ alg: 'HS256', kid: keys.signing.kid, typ: 'JWT' })).toString('base64url');
        const now = Math.floor(Date.now() / 1000);
        const body = Buffer.from(JSON.stringify({ iss: SERVICE, aud: SERVICE, sub: 'alice', iat: now, nbf: now, exp: now + 300, jti: 'x', access: [] })).toString('base64url');
        return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
      },
      /^token algorithm not accepted$/,
    ],
    [
      'a tampered payload (more access than was signed)',
      async () => {
        const [head, , sig] = (await tokens.issueAccess('alice', PULL_APP)).token.split('.');
        const now = Math.floor(Date.now() / 1000);
        const body = Buffer.from(JSON.stringify({ iss: SERVICE, aud: SERVICE, sub: 'alice', iat: now, nbf: now, exp: now + 300, jti: 'x', access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }] })).toString('base64url');
        return `${head}.${body}.${sig}`;
      },
      /^token signature does not verify$/,
    ],
    ['an expired token', () => signed({ iat: 1_000, nbf: 1_000, exp: 2_000 }), /^expired token$/],
    ['a token not valid yet', () => signed({ nbf: Math.floor(Date.now() / 1000) + 3600 }), /^token claim nbf not accepted/],
    ['another service\'s audience', () => signed({ aud: 'other.example.com' }), /^token claim aud not accepted/],
    ['another issuer', () => signed({ iss: 'evil.example.com' }), /^token claim iss not accepted/],
    ['a token without jti', () => signed({ jti: undefined }), /^token claim jti not accepted/],
    [
      'a key the gateway never had',
      async () => signed({}, {}, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      /^token signature does not verify$/,
    ],
    [
      'a key the gateway never had, under a kid of its own',
      async () => signed({}, { kid: 'mallory' }, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      /^token signed with a key the gateway does not hold$/,
    ],
    ['a refresh token used as an access token', async () => (await tokens.issueRefresh('alice')).token, /^token claim typ not accepted/],
    ['an access claim the gateway does not issue', () => signed({ access: [{ type: 'repository', name: '*', actions: ['*'] }] }), /^an access claim the gateway does not issue$/],
    ['a token for a user that does not exist', () => signed({ sub: 'mallory' }), /^user "mallory" no longer exists$/],
    ['an oversized token', async () => 'a'.repeat(9000), /^a token of 9000 characters$/],
    ['garbage', async () => 'not.a.token', /^malformed token/],
  ];
  for (const [what, forge, reason] of cases) {
    it(`refuses ${what}`, async () => {
      const result = await tokens.verifyAccess(await forge());
      expect(result.ok).toBe(false);
      expect(!result.ok && result.reason).toMatch(reason);
    });
  }
});

describe('refresh tokens', () => {
  it('live as long as set, are typed apart from access tokens, and verify to their user', async () => {
    const issued = await tokens.issueRefresh('alice');
    expect(issued.expiresIn).toBe(3600);
    expect(JSON.parse(Buffer.from(issued.token.split('.')[0]!, 'base64url').toString()).typ).toBe('refresh+jwt');
    expect(await tokens.verifyRefresh(issued.token)).toEqual({ ok: true, value: 'alice' });
  });

  it('are never taken from an access token', async () => {
    const access = await tokens.issueAccess('alice', PULL_APP);
    expect(await tokens.verifyRefresh(access.token)).toMatchObject({ ok: false, reason: expect.stringMatching(/^token claim typ not accepted/) });
  });

  it('end when the password changes (they name the entry\'s hash: only that very entry put back would revive them)', async () => {
    const issued = await tokens.issueRefresh('alice');
    const hash = hashes.get('alice')!;
    hashes.set('alice', '$2y$05$anotherHASHanotherHASHanotherHASHanotherHASHanoth');
    expect(await tokens.verifyRefresh(issued.token)).toEqual({ ok: false, reason: 'the password of "alice" changed since the token was made' });
    hashes.set('alice', hash);
    expect(await tokens.verifyRefresh(issued.token)).toEqual({ ok: true, value: 'alice' });
  });
});
