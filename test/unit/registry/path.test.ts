import { describe, expect, it } from 'vitest';
import { canonicalPath } from '../../../src/registry/path.js';

describe('canonicalPath', () => {
  it('keeps registry paths as they are', () => {
    for (const path of ['/v2/', '/v2', '/v2/team/app/manifests/1.0', '/v2/team/app/blobs/sha256:0123abcd', '/v2/_catalog', '/v2/a/blobs/uploads/6b0e-4d1c']) {
      expect(canonicalPath(path)).toEqual({ ok: true, path });
    }
  });

  it('decodes escapes of characters a path may hold, upper or lower case', () => {
    expect(canonicalPath('/v2/te%61m/app/tags/list')).toEqual({ ok: true, path: '/v2/team/app/tags/list' });
    expect(canonicalPath('/v2/my%5Fapp/tags/list')).toEqual({ ok: true, path: '/v2/my_app/tags/list' });
    expect(canonicalPath('/v2/a/blobs/sha256%3aabc')).toEqual({ ok: true, path: '/v2/a/blobs/sha256:abc' });
    // Decoded once only: %2561 is "%61", which is not "a".
    expect(canonicalPath('/v2/%2561/tags/list').ok).toBe(false);
  });

  it('refuses escapes that would change the path structure or hide bytes', () => {
    for (const path of ['/v2/team%2Fapp/tags/list', '/v2/team%2fapp/tags/list', '/v2/a%5Cb/tags/list', '/v2/a%00/tags/list', '/v2/a%25/tags/list',
      '/v2/a%3F/tags/list', '/v2/a%23/tags/list', '/v2/a%20b/tags/list', '/v2/a%C3%A9/tags/list', '/v2/a%/tags/list', '/v2/a%4/tags/list', '/v2/a%zz/tags/list']) {
      expect(canonicalPath(path).ok, path).toBe(false);
    }
  });

  it('refuses dot segments and empty segments, encoded or not', () => {
    for (const path of ['/v2/../etc', '/v2/./team/app/tags/list', '/v2/team/..', '/v2/team/.', '/v2/%2e%2e/x', '/v2/.%2E/x', '/v2//team/app/tags/list', '//v2/']) {
      expect(canonicalPath(path).ok, path).toBe(false);
    }
  });

  it('refuses characters outside RFC 3986 and paths that do not start with /', () => {
    for (const path of ['/v2/a\\b/tags/list', '/v2/a"b', '/v2/a<b>', '/v2/é', 'v2/', '*', 'http://evil/v2/']) {
      expect(canonicalPath(path).ok, path).toBe(false);
    }
  });

  it('says why', () => {
    expect(canonicalPath('/v2/a%2Fb')).toMatchObject({ ok: false, reason: expect.stringContaining('%2F') });
    expect(canonicalPath('/v2/../x')).toMatchObject({ ok: false, reason: expect.stringContaining('".."') });
  });
});
