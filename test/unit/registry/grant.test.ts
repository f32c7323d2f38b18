// Scopes as clients ask for them, the access claim a token carries, and whether a grant covers
// a request of the registry API.
import { describe, expect, it } from 'vitest';
import { accessClaim, grantFromClaim, MAX_SCOPES, parseScopes, requestScope, uncoveredScope, type Grant } from '../../../src/registry/grant.js';
import { requestAccess } from '../../../src/registry/routes.js';

const requested = (...values: string[]): Grant => {
  const parsed = parseScopes(values);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.requested;
};
const DIGEST = `sha256:${'a'.repeat(64)}`;
const access = (method: string, path: string, query = '') => requestAccess({ method, path, query });

describe('parseScopes', () => {
  it('reads repository scopes with their actions, several per parameter (OAuth2 joins them with spaces) and several parameters', () => {
    const grant = requested('repository:team/app:pull,push', 'repository:library/base:pull repository:team/app:delete');
    expect(accessClaim(grant)).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'library/base', actions: ['pull'] },
    ]);
  });

  it('reads "*" as every action, the catalog scope, and a name holding a registry host with a port', () => {
    expect(accessClaim(requested('repository:a/b:*', 'registry:catalog:*'))).toEqual([
      { type: 'repository', name: 'a/b', actions: ['pull', 'push', 'delete'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    // The name is everything between the first and the last colon; this one is no repository name, so nothing is granted.
    expect(accessClaim(requested('repository:localhost:5000/app:pull'))).toEqual([]);
  });

  it('drops what it does not understand instead of failing the request: other types, unknown actions, invalid names', () => {
    const grant = requested('user:alice:admin', 'repository:UPPER/case:pull', 'repository:team/app:admin', 'nonsense', 'repository:team/x:pull,fly', '');
    expect(accessClaim(grant)).toEqual([{ type: 'repository', name: 'team/x', actions: ['pull'] }]);
  });

  it('takes docker plugin scopes (a resource class) as repositories', () => {
    expect(accessClaim(requested('repository(plugin):vieux/sshfs:pull'))).toEqual([{ type: 'repository', name: 'vieux/sshfs', actions: ['pull'] }]);
  });

  it('refuses too many scopes and overlong ones, saying how many are allowed', () => {
    const many = Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `repository:r${i}:pull`);
    expect(parseScopes(many)).toEqual({ ok: false, reason: `more than ${MAX_SCOPES} scopes in one request` });
    expect(parseScopes([`repository:${'a'.repeat(600)}:pull`])).toMatchObject({ ok: false, reason: expect.stringMatching(/^a scope of 6\d\d characters; at most 512$/) });
  });
});

describe('grantFromClaim', () => {
  it('reads back what accessClaim wrote', () => {
    const grant = requested('repository:team/app:pull,push', 'registry:catalog:*');
    expect(accessClaim(grantFromClaim(JSON.parse(JSON.stringify(accessClaim(grant))))!)).toEqual(accessClaim(grant));
  });

  it('refuses claims the gateway never issues', () => {
    for (const claim of [null, 'pull', {}, [{ type: 'repository', name: 'a', actions: 'pull' }], [{ type: 'user', name: 'a', actions: ['pull'] }], [{ type: 'repository', name: '../x', actions: ['pull'] }], [1]]) {
      expect(grantFromClaim(claim)).toBeNull();
    }
  });
});

describe('uncoveredScope', () => {
  const grant = requested('repository:team/app:pull', 'repository:team/web:pull,push');

  it('lets the API root through with any token, and what the grant covers', () => {
    expect(uncoveredScope(grant, access('GET', '/v2/'))).toBeNull();
    expect(uncoveredScope(grant, access('GET', '/v2/team/app/manifests/latest'))).toBeNull();
    expect(uncoveredScope(grant, access('POST', '/v2/team/web/blobs/uploads/'))).toBeNull();
  });

  it('names the scope a token would need: pull and push for a push, the repository asked for, the catalog', () => {
    expect(uncoveredScope(grant, access('PUT', '/v2/team/app/manifests/v1'))).toBe('repository:team/app:pull,push');
    expect(uncoveredScope(grant, access('GET', '/v2/team/other/tags/list'))).toBe('repository:team/other:pull');
    expect(uncoveredScope(grant, access('DELETE', `/v2/team/web/manifests/${DIGEST}`))).toBe('repository:team/web:delete');
    expect(uncoveredScope(grant, access('GET', '/v2/_catalog'))).toBe('registry:catalog:*');
  });

  it('needs pull on the source of a blob mount too', () => {
    expect(uncoveredScope(grant, access('POST', '/v2/team/web/blobs/uploads/', `mount=${DIGEST}&from=team/app`))).toBeNull();
    expect(uncoveredScope(grant, access('POST', '/v2/team/web/blobs/uploads/', `mount=${DIGEST}&from=secret/app`))).toBe('repository:secret/app:pull');
  });

  it('gives the challenge of a request without a token the scope its route needs', () => {
    expect(requestScope(access('HEAD', `/v2/team/app/blobs/${DIGEST}`))).toBe('repository:team/app:pull');
    expect(requestScope(access('PATCH', '/v2/team/app/blobs/uploads/abc'))).toBe('repository:team/app:pull,push');
    expect(requestScope(access('GET', '/v2/'))).toBeNull();
  });
});
