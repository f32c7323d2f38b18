import { describe, expect, it } from 'vitest';
import { buildClientResponseHeaders, buildUpstreamRequestHeaders, unwritableHeader, withoutCookieDomain } from '../../../src/proxy/headers.js';
import { connectionTokens, namesEndToEnd } from '../../../src/proxy/hop-by-hop.js';

const forwarded = { clientAddress: '203.0.113.7', host: 'registry.example.com' };
const rewrite = { publicOrigin: 'https://registry.example.com', upstreamOrigins: new Set(['http://registry:5000']) };

describe('buildUpstreamRequestHeaders', () => {
  it('drops credentials, client forwarding headers and hop-by-hop headers, and sets exactly one set of ours', () => {
    const headers = buildUpstreamRequestHeaders(
      [
        'Host', 'evil.example',
        'Authorization', 'Basic YWxpY2U6c2VjcmV0',
        'X-Forwarded-For', '10.0.0.1',
        'X-Forwarded-Host', 'evil.example',
        'X-Forwarded-Proto', 'http',
        'Forwarded', 'for=1.2.3.4;host=evil.example',
        'X-Real-IP', '10.0.0.2',
        'Connection', 'keep-alive, X-Secret',
        'X-Secret', '1',
        'Keep-Alive', 'timeout=5',
        'TE', 'trailers',
        'Upgrade', 'h2c',
        'Proxy-Authorization', 'Basic eA==',
        'Proxy-Connection', 'keep-alive',
        'Expect', '100-continue',
        'Accept', 'application/vnd.oci.image.manifest.v1+json',
        'Accept', 'application/vnd.docker.distribution.manifest.v2+json',
        'Content-Length', '12',
      ],
      forwarded,
    );
    expect(headers).toEqual({
      host: 'registry.example.com',
      accept: ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'],
      'content-length': '12',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'registry.example.com',
    });
  });

  it('drops forwarding headers spelled with underscores and other claims of origin', () => {
    const headers = buildUpstreamRequestHeaders(
      ['X_Forwarded_Host', 'evil.example', 'True-Client-IP', '10.0.0.3', 'X-Original-Host', 'evil.example', 'X-Custom_Name', 'kept'],
      forwarded,
    );
    expect(headers).toEqual({
      host: 'registry.example.com',
      'x-custom_name': 'kept',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'registry.example.com',
    });
  });

  it('never lets a Connection header strip the body length or the host', () => {
    const headers = buildUpstreamRequestHeaders(['Host', 'evil.example', 'Content-Length', '40', 'Connection', 'Content-Length, Host, X-Secret', 'X-Secret', '1'], forwarded);
    expect(headers['content-length']).toBe('40');
    expect(headers.host).toBe('registry.example.com');
    expect(headers['x-secret']).toBeUndefined();
  });

  it('keeps every line of a repeated header, in order, as separate lines', () => {
    const headers = buildUpstreamRequestHeaders(['Accept', 'a', 'ACCEPT', 'b', 'accept', 'c, d'], forwarded);
    expect(headers.accept).toEqual(['a', 'b', 'c, d']);
  });

  it('drops what a Connection header names, given or worked out', () => {
    const raw = ['Accept', 'a', 'Connection', 'keep-alive', 'connection', 'ACCEPT'];
    expect(buildUpstreamRequestHeaders(raw, forwarded).accept).toBeUndefined();
    expect(buildUpstreamRequestHeaders(raw, forwarded, connectionTokens(raw)).accept).toBeUndefined();
  });

  it('keeps a streamed body chunked', () => {
    const headers = buildUpstreamRequestHeaders(['Transfer-Encoding', 'chunked', 'Content-Type', 'application/octet-stream'], forwarded);
    expect(headers['transfer-encoding']).toBe('chunked');
    expect(headers['content-type']).toBe('application/octet-stream');
  });
});

describe('buildUpstreamRequestHeaders where the registry signs users in itself (--auth upstream)', () => {
  it('passes the client\'s Authorization on, and still drops claims of origin, hop-by-hop and proxy credentials', () => {
    const headers = buildUpstreamRequestHeaders(
      [
        'Host', 'evil.example',
        'Authorization', 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln',
        'Proxy-Authorization', 'Basic cHJveHk6cHJveHk=',
        'X-Forwarded-Host', 'evil.example',
        'X_Forwarded_For', '10.0.0.1',
        'Forwarded', 'for=1.2.3.4',
        'Connection', 'X-Secret',
        'X-Secret', '1',
        'Expect', '100-continue',
        'Accept', 'application/json',
      ],
      { ...forwarded, credentials: true },
    );
    expect(headers).toEqual({
      host: 'registry.example.com',
      authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln',
      accept: 'application/json',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'registry.example.com',
    });
  });

  it('never passes Authorization without it', () => {
    expect(buildUpstreamRequestHeaders(['Authorization', 'Basic YTpi'], { ...forwarded, credentials: false }).authorization).toBeUndefined();
  });
});

describe('connectionTokens and namesEndToEnd', () => {
  it('lists every Connection header, lower-cased, never Content-Length or Host', () => {
    expect([...connectionTokens(['Connection', 'Keep-Alive, X-A', 'connection', ' accept ,, Host', 'Content-Length', '1'])]).toEqual(['keep-alive', 'x-a', 'accept']);
    expect(connectionTokens(['Accept', 'a']).size).toBe(0);
  });

  it('tells a list that strips an end-to-end header from one of options and hop-by-hop headers', () => {
    for (const value of ['accept', 'Accept, keep-alive', 'user-agent', 'x-anything']) expect(namesEndToEnd(connectionTokens(['Connection', value])), value).toBe(true);
    for (const value of ['close', 'keep-alive', 'Upgrade', 'te, trailer', 'proxy-anything', 'host, content-length']) expect(namesEndToEnd(connectionTokens(['Connection', value])), value).toBe(false);
  });
});

describe('buildClientResponseHeaders', () => {
  const ctx = { ...rewrite, status: 202, challenge: 'Basic realm="Registry Realm"', registryApi: true };

  it('rewrites Location and Link, replaces the challenge and drops hop-by-hop headers', () => {
    const headers = buildClientResponseHeaders(
      [
        'Location', 'http://registry:5000/v2/a/blobs/uploads/u?_state=x%3D',
        'Link', '<http://registry:5000/v2/_catalog?last=a&n=1>; rel="next"',
        'WWW-Authenticate', 'Bearer realm="https://auth.internal/token",service="registry.internal"',
        'Connection', 'keep-alive, X-Internal',
        'X-Internal', 'secret',
        'Keep-Alive', 'timeout=4',
        'Transfer-Encoding', 'chunked',
        'Docker-Upload-UUID', 'u',
        'Range', '0-99',
      ],
      ctx,
    );
    expect(headers).toEqual({
      location: 'https://registry.example.com/v2/a/blobs/uploads/u?_state=x%3D',
      link: '<https://registry.example.com/v2/_catalog?last=a&n=1>; rel="next"',
      'www-authenticate': 'Basic realm="Registry Realm"',
      'docker-upload-uuid': 'u',
      range: '0-99',
      'docker-distribution-api-version': 'registry/2.0',
    });
  });

  it('adds the API version header to registry responses that lack it, errors included', () => {
    const headers = buildClientResponseHeaders(['Content-Type', 'application/json'], { ...ctx, status: 500 });
    expect(headers['docker-distribution-api-version']).toBe('registry/2.0');
  });
});

describe('buildClientResponseHeaders where the registry signs users in itself (--auth upstream)', () => {
  const upstreamCtx = { ...rewrite, status: 401, challenge: null, realmOrigin: 'https://registry.example.com', registryApi: true };

  it('passes every challenge of the registry, a realm on its own origin moved onto the gateway', () => {
    const headers = buildClientResponseHeaders(
      [
        'WWW-Authenticate', 'Bearer realm="http://registry:5000/token",service="registry",scope="repository:team/app:pull"',
        'WWW-Authenticate', 'Basic realm="test"',
      ],
      upstreamCtx,
    );
    expect(headers['www-authenticate']).toEqual([
      'Bearer realm="https://registry.example.com/token",service="registry",scope="repository:team/app:pull"',
      'Basic realm="test"',
    ]);
  });

  it('keeps Set-Cookie on the gateway\'s host: its Domain attribute goes, the rest stays', () => {
    const headers = buildClientResponseHeaders(
      ['Set-Cookie', 'sid=abc; Path=/; Domain=.internal.example; HttpOnly; Secure', 'Set-Cookie', 'csrf=x; domain=registry; SameSite=Strict'],
      { ...upstreamCtx, status: 200, registryApi: false },
    );
    expect(headers['set-cookie']).toEqual(['sid=abc; Path=/; HttpOnly; Secure', 'csrf=x; SameSite=Strict']);
    expect(headers['docker-distribution-api-version']).toBeUndefined();
  });

  it('leaves Set-Cookie as it was where the gateway signs users in', () => {
    const headers = buildClientResponseHeaders(['Set-Cookie', 'sid=abc; Domain=.internal.example'], { ...rewrite, status: 200, challenge: 'Basic realm="R"', registryApi: true });
    expect(headers['set-cookie']).toBe('sid=abc; Domain=.internal.example');
  });
});

describe('withoutCookieDomain', () => {
  it('drops Domain in any case and spacing, and only Domain', () => {
    expect(withoutCookieDomain('a=b')).toBe('a=b');
    expect(withoutCookieDomain('a=b;Domain=x.example;Path=/')).toBe('a=b;Path=/');
    expect(withoutCookieDomain('a=b; DOMAIN = x.example')).toBe('a=b');
    expect(withoutCookieDomain('a=b; Domain')).toBe('a=b');
    // A cookie named domain is the cookie itself, and an attribute that merely starts so is another.
    expect(withoutCookieDomain('domain=x; Path=/')).toBe('domain=x; Path=/');
    expect(withoutCookieDomain('a=b; Domains=x')).toBe('a=b; Domains=x');
  });
});

describe('unwritableHeader', () => {
  it('names the first header holding a byte Node may not write, and passes clean ones', () => {
    expect(unwritableHeader({ location: '/v2/a/blobs/uploads/u?_state=x', link: ['<a>', '<b>'], 'content-length': 0 })).toBeNull();
    expect(unwritableHeader({ 'x-ok': 'caf\u00e9', location: '/v2/a\r\nSet-Cookie: x=1' })).toBe('location');
    expect(unwritableHeader({ link: ['<a>', '<b\u0000>'] })).toBe('link');
    expect(unwritableHeader({ 'www-authenticate': 'Basic realm="\u001b"' })).toBe('www-authenticate');
  });
});
