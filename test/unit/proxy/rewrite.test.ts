import { describe, expect, it } from 'vitest';
import { rewriteChallenge, rewriteForHost, rewriteLink, rewriteLocation, type RewriteContext } from '../../../src/proxy/rewrite.js';

const upstreamOrigins = new Set(['http://127.0.0.1:5000', 'https://127.0.0.1:8443']);
const relative: RewriteContext = { publicOrigin: null, upstreamOrigins };
const pub: RewriteContext = { publicOrigin: 'https://registry.example.com', upstreamOrigins };
const state = '_state=AbC-dEf_%3D%3D&digest=sha256%3Aabc';

describe('rewriteLocation', () => {
  it('moves an upload URL on the upstream origin onto the public origin, query byte for byte', () => {
    expect(rewriteLocation(`http://127.0.0.1:5000/v2/team/app/blobs/uploads/u1?${state}`, pub, 202)).toBe(
      `https://registry.example.com/v2/team/app/blobs/uploads/u1?${state}`,
    );
  });

  it('makes it relative without a public origin', () => {
    expect(rewriteLocation(`http://127.0.0.1:5000/v2/team/app/blobs/uploads/u1?${state}`, relative, 202)).toBe(
      `/v2/team/app/blobs/uploads/u1?${state}`,
    );
  });

  it('rewrites an origin the upstream reports from its own http.host setting', () => {
    expect(rewriteLocation('http://registry.internal:5000/v2/a/manifests/sha256:1', pub, 201)).toBe(
      'https://registry.example.com/v2/a/manifests/sha256:1',
    );
  });

  it('keeps relative Locations as they are', () => {
    expect(rewriteLocation('/v2/a/blobs/uploads/x?_state=1', pub, 202)).toBe('/v2/a/blobs/uploads/x?_state=1');
  });

  it('passes a storage redirect to another origin byte for byte', () => {
    const presigned = 'https://bucket.s3.example.com/docker/registry/v2/blobs/sha256/ab/abc/data?X-Amz-Signature=%2Fz';
    expect(rewriteLocation(presigned, pub, 307)).toBe(presigned);
    const elsewhereV2 = 'https://cdn.example.net/v2/a/blobs/sha256:1?sig=1';
    expect(rewriteLocation(elsewhereV2, pub, 307)).toBe(elsewhereV2);
  });

  it('rewrites a redirect that stays on the upstream origin', () => {
    expect(rewriteLocation('http://127.0.0.1:5000/v2/', relative, 301)).toBe('/v2/');
  });

  it('leaves URLs outside the registry API on other origins alone', () => {
    expect(rewriteLocation('https://docs.example.com/debug/vars', pub, 200)).toBe('https://docs.example.com/debug/vars');
    expect(rewriteLocation('http://registry.internal:5000/v22/x', pub, 201)).toBe('http://registry.internal:5000/v22/x');
  });

  it('never lets the upstream address out, whatever the path', () => {
    expect(rewriteLocation('http://127.0.0.1:5000/debug/vars', pub, 200)).toBe('https://registry.example.com/debug/vars');
    expect(rewriteLocation('http://127.0.0.1:5000/v22/x', relative, 302)).toBe('/v22/x');
    expect(rewriteLocation('http://127.0.0.1:5000', relative, 302)).toBe('/');
    expect(rewriteLink('<http://127.0.0.1:5000/internal>; rel="help"', pub)).toBe('<https://registry.example.com/internal>; rel="help"');
  });

  it('treats a scheme-relative URL as absolute', () => {
    expect(rewriteLocation('//registry.internal:5000/v2/a/blobs/x', relative, 201)).toBe('/v2/a/blobs/x');
  });
});

describe('rewriteLink', () => {
  it('rewrites the target of a catalog next link and keeps its parameters', () => {
    expect(rewriteLink('<http://registry.internal:5000/v2/_catalog?last=b&n=2>; rel="next"', pub)).toBe(
      '<https://registry.example.com/v2/_catalog?last=b&n=2>; rel="next"',
    );
    expect(rewriteLink('</v2/_catalog?last=b&n=2>; rel="next"', pub)).toBe('</v2/_catalog?last=b&n=2>; rel="next"');
  });

  it('rewrites each of several links', () => {
    expect(rewriteLink('<http://127.0.0.1:5000/v2/a/tags/list?n=1>; rel="next", <https://docs.example/x>; rel="help"', relative)).toBe(
      '</v2/a/tags/list?n=1>; rel="next", <https://docs.example/x>; rel="help"',
    );
  });
});


describe('rewriteForHost', () => {
  const upload = `http://127.0.0.1:5000/v2/team/app/blobs/uploads/u1?${state}`;
  const on = (host: string | undefined, ctx = pub) => rewriteLocation(upload, rewriteForHost(ctx, host), 202);

  it('puts URLs on the public origin for a client that used the public name, with or without :443', () => {
    expect(on('registry.example.com')).toBe(`https://registry.example.com/v2/team/app/blobs/uploads/u1?${state}`);
    expect(on('Registry.Example.com:443')).toBe(`https://registry.example.com/v2/team/app/blobs/uploads/u1?${state}`);
  });

  it('makes them relative for a client that used another name (a container using gateway:8443), so it stays on that origin', () => {
    expect(on('gateway:8443')).toBe(`/v2/team/app/blobs/uploads/u1?${state}`);
    expect(on('registry.example.com:8443')).toBe(`/v2/team/app/blobs/uploads/u1?${state}`);
    expect(on('evil.example')).toBe(`/v2/team/app/blobs/uploads/u1?${state}`);
  });

  it('leaves relative URLs relative without a public URL', () => {
    expect(on('registry.example.com', relative)).toBe(`/v2/team/app/blobs/uploads/u1?${state}`);
  });
});

describe('rewriteChallenge', () => {
  const origin = 'https://registry.example.com';

  it("moves a realm on the upstream's own origin onto the public origin, keeping scheme, path, query and every other parameter", () => {
    expect(rewriteChallenge('Bearer realm="http://127.0.0.1:5000/token",service="registry",scope="repository:team/app:pull,push"', pub, origin)).toBe(
      'Bearer realm="https://registry.example.com/token",service="registry",scope="repository:team/app:pull,push"',
    );
    expect(rewriteChallenge('Bearer realm="http://127.0.0.1:5000/service/token?x=1&y=%2F"', pub, origin)).toBe('Bearer realm="https://registry.example.com/service/token?x=1&y=%2F"');
    expect(rewriteChallenge('Bearer realm="http://127.0.0.1:5000"', pub, origin)).toBe('Bearer realm="https://registry.example.com/"');
  });

  it('takes the realm parameter in any case, unquoted or quoted, with spaces around "="', () => {
    expect(rewriteChallenge('Bearer REALM = "HTTP://127.0.0.1:5000/token", service="registry"', pub, origin)).toBe('Bearer REALM = "https://registry.example.com/token", service="registry"');
    expect(rewriteChallenge('Bearer realm=http://127.0.0.1:5000/token,service=registry', pub, origin)).toBe('Bearer realm="https://registry.example.com/token",service=registry');
    expect(rewriteChallenge('Bearer service="registry",realm="https://127.0.0.1:8443/token"', pub, origin)).toBe('Bearer service="registry",realm="https://registry.example.com/token"');
  });

  it('passes a realm on another origin (an external token server) untouched', () => {
    for (const value of [
      'Bearer realm="https://auth.example.com/token",service="registry"',
      'Bearer realm="http://127.0.0.1:5001/token",service="registry"',
      'Bearer realm="https://127.0.0.1:5000/token"',
    ]) {
      expect(rewriteChallenge(value, pub, origin)).toBe(value);
    }
  });

  it('leaves a Basic realm, which names no URL, and a relative realm as they are', () => {
    expect(rewriteChallenge('Basic realm="Registry Realm"', pub, origin)).toBe('Basic realm="Registry Realm"');
    expect(rewriteChallenge('Bearer realm="/token"', pub, origin)).toBe('Bearer realm="/token"');
    expect(rewriteChallenge('Bearer realm="//127.0.0.1:5000/token"', pub, origin)).toBe('Bearer realm="//127.0.0.1:5000/token"');
  });

  it('never takes "realm=" inside another parameter\'s value for the realm', () => {
    const value = 'Bearer scope="x realm=http://127.0.0.1:5000/a",realm="https://auth.example.com/token"';
    expect(rewriteChallenge(value, pub, origin)).toBe(value);
    expect(rewriteChallenge('Bearer error="a \\" realm=http://127.0.0.1:5000/b",realm="http://127.0.0.1:5000/token"', pub, origin)).toBe(
      'Bearer error="a \\" realm=http://127.0.0.1:5000/b",realm="https://registry.example.com/token"',
    );
  });

  it('rewrites each challenge of a list', () => {
    expect(rewriteChallenge('Basic realm="r", Bearer realm="http://127.0.0.1:5000/token"', pub, origin)).toBe('Basic realm="r", Bearer realm="https://registry.example.com/token"');
  });
});
