import { describe, expect, it } from 'vitest';
import { cacheableHeaders, changedRepository, createManifestCache, manifestRequestKey, type CachedManifest, type ManifestKey } from '../../../src/proxy/manifest-cache.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const answer = (text: string): CachedManifest => ({ headers: { 'content-length': String(text.length) }, body: Buffer.from(text) });
const key = (repository: string, reference = 'latest', accept = ''): ManifestKey => ({ repository, key: `${repository}\n${reference}\n${accept}` });

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('manifestRequestKey', () => {
  it('keys GET and HEAD of a manifest by repository, reference and Accept', () => {
    const a = manifestRequestKey('GET', '/v2/team/app/manifests/latest', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    const b = manifestRequestKey('HEAD', '/v2/team/app/manifests/latest', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    const c = manifestRequestKey('GET', '/v2/team/app/manifests/latest', { accept: 'application/vnd.docker.distribution.manifest.v2+json' });
    expect(a?.repository).toBe('team/app');
    expect(a?.key).toBe(b?.key);
    expect(c?.key).not.toBe(a?.key);
    expect(manifestRequestKey('GET', `/v2/team/app/manifests/${DIGEST}`, {})?.repository).toBe('team/app');
    expect(manifestRequestKey('GET', '/v2/team/app/manifests/v1', {})?.key).not.toBe(manifestRequestKey('GET', '/v2/team/app/manifests/v2', {})?.key);
  });

  it('leaves everything else to the upstream', () => {
    expect(manifestRequestKey('PUT', '/v2/team/app/manifests/latest', {})).toBeNull();
    expect(manifestRequestKey('DELETE', `/v2/team/app/manifests/${DIGEST}`, {})).toBeNull();
    expect(manifestRequestKey('GET', `/v2/team/app/blobs/${DIGEST}`, {})).toBeNull();
    expect(manifestRequestKey('GET', '/v2/team/app/tags/list', {})).toBeNull();
    expect(manifestRequestKey('GET', '/v2/_catalog', {})).toBeNull();
    expect(manifestRequestKey('GET', '/v2/team/app/manifests/latest?x=1', {})).toBeNull();
    expect(manifestRequestKey('GET', '/v2/Team/app/manifests/latest', {})).toBeNull();
    for (const name of ['range', 'if-none-match', 'if-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'cache-control', 'pragma']) {
      expect(manifestRequestKey('GET', '/v2/team/app/manifests/latest', { [name]: 'x' }), name).toBeNull();
    }
    expect(manifestRequestKey('GET', '/v2/team/app/manifests/latest', { 'content-length': '3' })).toBeNull();
    expect(manifestRequestKey('GET', '/v2/team/app/manifests/latest', { 'transfer-encoding': 'chunked' })).toBeNull();
  });
});

describe('changedRepository', () => {
  it('names the repository of every request that may change it', () => {
    expect(changedRepository('PUT', '/v2/team/app/manifests/latest', '')).toBe('team/app');
    expect(changedRepository('DELETE', `/v2/team/app/manifests/${DIGEST}`, '')).toBe('team/app');
    expect(changedRepository('DELETE', `/v2/team/app/blobs/${DIGEST}`, '')).toBe('team/app');
    expect(changedRepository('POST', '/v2/team/app/blobs/uploads/', 'mount=x&from=other/repo')).toBe('team/app');
    expect(changedRepository('PATCH', '/v2/team/app/blobs/uploads/abc-123', '')).toBe('team/app');
  });

  it('is null for reads and for what is not a repository route', () => {
    expect(changedRepository('GET', '/v2/team/app/manifests/latest', '')).toBeNull();
    expect(changedRepository('HEAD', '/v2/team/app/manifests/latest', '')).toBeNull();
    expect(changedRepository('DELETE', '/v2/', '')).toBeNull();
  });
});

describe('cacheableHeaders', () => {
  it('keeps a whole 200 without its Date', () => {
    expect(cacheableHeaders(200, { 'content-length': '3', date: 'Mon', etag: '"x"' })).toEqual({ 'content-length': '3', etag: '"x"' });
  });
  it('refuses other statuses, answers without a length, and cookies', () => {
    expect(cacheableHeaders(404, { 'content-length': '3' })).toBeNull();
    expect(cacheableHeaders(200, {})).toBeNull();
    expect(cacheableHeaders(200, { 'content-length': '3', 'set-cookie': 'a=b' })).toBeNull();
  });
});

describe('createManifestCache', () => {
  it('answers until the TTL has passed, then forgets', () => {
    const t = clock();
    const cache = createManifestCache({ ttlMs: 1_000, now: t.now });
    const k = key('team/app');
    expect(cache.store(cache.ticket('team/app'), k, answer('one'))).toBe(true);
    t.advance(999);
    expect(cache.lookup(k)?.body.toString()).toBe('one');
    t.advance(1);
    expect(cache.lookup(k)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('drops only the changed repository, and tells the other processes', () => {
    const told: string[] = [];
    const cache = createManifestCache({ ttlMs: 60_000, onChange: (r) => told.push(r) });
    cache.store(cache.ticket('team/app'), key('team/app'), answer('app'));
    cache.store(cache.ticket('team/app'), key('team/app', DIGEST), answer('app by digest'));
    cache.store(cache.ticket('team/other'), key('team/other'), answer('other'));
    cache.changed('team/app');
    expect(cache.lookup(key('team/app'))).toBeUndefined();
    expect(cache.lookup(key('team/app', DIGEST))).toBeUndefined();
    expect(cache.lookup(key('team/other'))?.body.toString()).toBe('other');
    expect(told).toEqual(['team/app']);
    cache.drop('team/other');
    expect(cache.lookup(key('team/other'))).toBeUndefined();
    expect(told).toEqual(['team/app']);
  });

  it('does not keep what a GET got while a push to its repository was under way', () => {
    const cache = createManifestCache({ ttlMs: 60_000 });
    const ticket = cache.ticket('team/app');
    cache.changed('team/app'); // a push started (or finished) after the GET did
    expect(cache.store(ticket, key('team/app'), answer('maybe old'))).toBe(false);
    expect(cache.lookup(key('team/app'))).toBeUndefined();
    // A GET started after the change may keep its answer; other repositories are not affected.
    expect(cache.store(cache.ticket('team/app'), key('team/app'), answer('new'))).toBe(true);
    const other = cache.ticket('team/other');
    cache.changed('team/app');
    expect(cache.store(other, key('team/other'), answer('other'))).toBe(true);
  });

  it('a ticket is good only for its own repository', () => {
    const cache = createManifestCache({ ttlMs: 60_000 });
    expect(cache.store(cache.ticket('team/app'), key('team/other'), answer('x'))).toBe(false);
  });

  it('stays within its size limits, evicting the oldest first', () => {
    const cache = createManifestCache({ ttlMs: 60_000, maxEntries: 2, maxBytes: 10, maxEntryBytes: 6 });
    expect(cache.store(cache.ticket('a/big'), key('a/big'), answer('1234567'))).toBe(false);
    cache.store(cache.ticket('a/one'), key('a/one'), answer('111'));
    cache.store(cache.ticket('a/two'), key('a/two'), answer('222'));
    cache.store(cache.ticket('a/three'), key('a/three'), answer('333'));
    expect(cache.size).toBe(2);
    expect(cache.lookup(key('a/one'))).toBeUndefined();
    cache.store(cache.ticket('a/four'), key('a/four'), answer('444444'));
    expect(cache.lookup(key('a/two'))).toBeUndefined();
    expect(cache.lookup(key('a/three'))?.body.toString()).toBe('333');
    expect(cache.lookup(key('a/four'))?.body.toString()).toBe('444444');
  });

  it('after forgetting what changed in many repositories, refuses every ticket taken before', () => {
    const cache = createManifestCache({ ttlMs: 60_000 });
    const ticket = cache.ticket('team/app');
    for (let i = 0; i < 10_001; i++) cache.changed(`r/${i}`);
    expect(cache.store(ticket, key('team/app'), answer('x'))).toBe(false);
    expect(cache.store(cache.ticket('team/app'), key('team/app'), answer('x'))).toBe(true);
  });
});
