// Request -> needed access, for every route of the distribution API (OCI distribution spec
// end-1 .. end-13, plus the registry's catalog and upload-status routes).
import { describe, expect, it } from 'vitest';
import { isOverlongPath, mountSources, NAME_TOTAL_LENGTH_MAX, requestAccess, type RegistryRequest } from '../../../src/registry/routes.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const UUID = '6f4e5a3c-1b2d-4e5f-8a9b-0c1d2e3f4a5b';

const access = (method: string, target: string) => {
  const at = target.indexOf('?');
  const request: RegistryRequest = { method, path: at === -1 ? target : target.slice(0, at), query: at === -1 ? '' : target.slice(at + 1) };
  return requestAccess(request);
};
const needs = (method: string, target: string) => {
  const a = access(method, target);
  return a.kind === 'repository' ? a.needs.map((n) => `${n.action} ${n.repository}`) : a.kind;
};

describe('requestAccess: the routes of the distribution API', () => {
  it.each([
    // end-1: the API check, open to any authenticated user
    ['GET', '/v2/', 'ping'],
    ['GET', '/v2', 'ping'],
    // end-2, end-3: blobs and manifests read
    ['GET', `/v2/team-a/app/blobs/${DIGEST}`, ['pull team-a/app']],
    ['HEAD', `/v2/team-a/app/blobs/${DIGEST}`, ['pull team-a/app']],
    ['GET', '/v2/team-a/app/manifests/v1.2', ['pull team-a/app']],
    ['HEAD', `/v2/team-a/app/manifests/${DIGEST}`, ['pull team-a/app']],
    // end-4a, end-4b: upload starts, session and monolithic
    ['POST', '/v2/team-a/app/blobs/uploads/', ['push team-a/app']],
    ['POST', `/v2/team-a/app/blobs/uploads/?digest=${DIGEST}`, ['push team-a/app']],
    // end-5, end-6: chunks and completion
    ['PATCH', `/v2/team-a/app/blobs/uploads/${UUID}`, ['push team-a/app']],
    ['PUT', `/v2/team-a/app/blobs/uploads/${UUID}?digest=${DIGEST}&_state=abc`, ['push team-a/app']],
    // end-7: manifest push
    ['PUT', '/v2/team-a/app/manifests/latest', ['push team-a/app']],
    // end-8a, end-8b: tags
    ['GET', '/v2/team-a/app/tags/list', ['pull team-a/app']],
    ['GET', '/v2/team-a/app/tags/list?n=10&last=v1', ['pull team-a/app']],
    // end-9, end-10: deletes
    ['DELETE', `/v2/team-a/app/manifests/${DIGEST}`, ['delete team-a/app']],
    ['DELETE', `/v2/team-a/app/blobs/${DIGEST}`, ['delete team-a/app']],
    // end-11: cross-repository mount also reads the source
    ['POST', `/v2/team-a/app/blobs/uploads/?mount=${DIGEST}&from=library%2Fbase`, ['push team-a/app', 'pull library/base']],
    // end-12: referrers
    ['GET', `/v2/team-a/app/referrers/${DIGEST}`, ['pull team-a/app']],
    ['GET', `/v2/team-a/app/referrers/${DIGEST}?artifactType=application%2Fjson`, ['pull team-a/app']],
    // end-13: upload status
    ['GET', `/v2/team-a/app/blobs/uploads/${UUID}`, ['push team-a/app']],
    // cancelling an upload deletes nothing stored: part of pushing
    ['DELETE', `/v2/team-a/app/blobs/uploads/${UUID}`, ['push team-a/app']],
    // the catalog is filtered, not refused
    ['GET', '/v2/_catalog', 'catalog'],
    ['GET', '/v2/_catalog?n=2&last=a', 'catalog'],
  ])('%s %s needs %j', (method, target, want) => {
    expect(needs(method, target)).toEqual(want);
  });

  it('reports the tag or digest of manifests and blobs', () => {
    expect(access('PUT', '/v2/app/manifests/v1')).toMatchObject({ route: 'manifest', repository: 'app', reference: 'v1' });
    expect(access('DELETE', `/v2/app/blobs/${DIGEST}`)).toMatchObject({ route: 'blob', reference: DIGEST });
    expect(access('POST', '/v2/app/blobs/uploads/')).toMatchObject({ route: 'upload', reference: null });
  });

  it('splits the repository name where the registry does: at the last route keyword', () => {
    // "manifests", "blobs", "tags" and "uploads" are valid name components.
    expect(needs('GET', '/v2/a/manifests/b/manifests/latest')).toEqual(['pull a/manifests/b']);
    expect(needs('GET', '/v2/a/tags/list/tags/list')).toEqual(['pull a/tags/list']);
    expect(needs('PUT', '/v2/x/blobs/uploads/manifests/v1')).toEqual(['push x/blobs/uploads']);
    expect(needs('GET', `/v2/blobs/blobs/${DIGEST}`)).toEqual(['pull blobs']);
    expect(needs('POST', '/v2/a/blobs/uploads/blobs/uploads/')).toEqual(['push a/blobs/uploads']);
  });

  it.each([
    ['GET', '/v2/Team-A/app/manifests/v1'], // upper case: the registry's router takes it for a host name
    ['GET', '/v2/localhost:5000/app/manifests/v1'],
    ['GET', '/v2/team-a/App/manifests/v1'],
    ['GET', '/v2/team-a/app/manifests/'],
    ['GET', '/v2/team-a/app/manifests/v1/'],
    ['GET', '/v2/team-a/app/tags/list/'],
    ['GET', '/v2/team-a/app/blobs/not-a-digest'],
    ['GET', '/v2/team-a/app/'],
    ['GET', '/v2/team-a/app'],
    ['GET', '/v2/_catalog/'],
    ['POST', '/v2/_catalog'],
    ['GET', '/v2/-app/manifests/v1'],
    ['GET', '/v2/app-/manifests/v1'],
    ['GET', '/v2/a..b/manifests/v1'],
    ['OPTIONS', '/v2/team-a/app/manifests/v1'],
    ['POST', '/v2/team-a/app/manifests/v1'],
    ['PATCH', '/v2/team-a/app/manifests/v1'],
    ['PUT', `/v2/team-a/app/blobs/${DIGEST}`],
    ['GET', '/v2/team-a/app/blobs/uploads/'],
    ['DELETE', '/v2/team-a/app/tags/list'],
    ['GET', '/v2/team-a/app/something/else'],
  ])('refuses %s %s as not a mappable request', (method, target) => {
    expect(access(method, target).kind).toBe('unmapped');
  });

});

describe('repository names longer than the registry takes', () => {
  const name = (length: number) => `${'a'.repeat(length - 2)}/b`;

  it('routes a name of 255 characters, the most the registry accepts', () => {
    expect(needs('GET', `/v2/${name(NAME_TOTAL_LENGTH_MAX)}/manifests/v1`)).toEqual([`pull ${name(NAME_TOTAL_LENGTH_MAX)}`]);
    expect(needs('GET', `/v2/${name(NAME_TOTAL_LENGTH_MAX)}/referrers/sha512:${'a'.repeat(128)}`)).toEqual([`pull ${name(NAME_TOTAL_LENGTH_MAX)}`]);
  });

  it.each([
    ['GET', `/v2/${name(256)}/manifests/v1`],
    ['GET', `/v2/${name(256)}/tags/list`],
    ['POST', `/v2/${name(300)}/blobs/uploads/`],
    ['GET', `/v2/${name(32 * 1024)}/manifests/v1`],
    ['GET', `/v2/${'a/'.repeat(16 * 1024)}x/blobs/${DIGEST}`],
    ['POST', `/v2/app/blobs/uploads/?mount=${DIGEST}&from=${name(256)}`],
    ['POST', `/v2/app/blobs/uploads/?mount=${DIGEST}&from=library%2Fbase&from=${'a'.repeat(20_000)}`],
  ])('refuses %s %s as an invalid name', (method, target) => {
    expect(access(method, target).kind).toBe('invalid-name');
  });

  it('refuses a path too long for any name before routing it', () => {
    const path = `/v2/${'a'.repeat(520)}`;
    expect(isOverlongPath(path)).toBe(true);
    expect(access('GET', path)).toMatchObject({ kind: 'invalid-name', reason: expect.stringContaining('524 characters') });
    expect(isOverlongPath(`/v2/${name(NAME_TOTAL_LENGTH_MAX)}/manifests/sha512:${'a'.repeat(128)}`)).toBe(false);
  });
});

describe('mountSources', () => {
  const sources = (query: string) => {
    const result = mountSources(query);
    return result.ok ? result.sources : null;
  };

  it('finds every "from", however the query spells it', () => {
    expect(sources(`mount=${DIGEST}&from=team%2Fapp`)).toEqual(['team/app']);
    expect(sources('from=a&from=b')).toEqual(['a', 'b']);
    expect(sources('x=1;from=secret/app')).toEqual(['secret/app']);
    expect(sources('fr%6Fm=secret/app')).toEqual(['secret/app']);
    expect(sources('mount=x')).toEqual([]);
    expect(sources('')).toEqual([]);
  });

  it('refuses a source that is not a repository name', () => {
    expect(sources('from=Secret/App')).toBeNull();
    expect(sources('from=')).toBeNull();
    expect(sources('from=%zz')).toBeNull();
    expect(sources('from=a/../b')).toBeNull();
    expect(access('POST', '/v2/app/blobs/uploads/?mount=x&from=..%2Fsecret').kind).toBe('unmapped');
  });

  it('says when a source is too long rather than malformed', () => {
    expect(mountSources(`from=${'a'.repeat(255)}`)).toEqual({ ok: true, sources: ['a'.repeat(255)] });
    expect(mountSources(`from=${'a'.repeat(256)}`)).toMatchObject({ ok: false, tooLong: true });
    expect(mountSources(`from=${'A'.repeat(256)}`)).toMatchObject({ ok: false, tooLong: true });
  });
});
