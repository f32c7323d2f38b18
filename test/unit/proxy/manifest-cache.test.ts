import { describe, expect, it } from 'vitest';
import type { OutgoingHttpHeaders } from 'node:http';
import { buildUpstreamRequestHeaders } from '../../../src/proxy/headers.js';
import { connectionTokens } from '../../../src/proxy/hop-by-hop.js';
import { cacheableHeaders, changedRepository, createManifestCache, manifestRequestKey, type CachedManifest, type ManifestKey } from '../../../src/proxy/manifest-cache.js';
import { routed } from '../../../src/registry/context.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const answer = (text: string): CachedManifest => ({ headers: { 'content-length': String(text.length) }, body: Buffer.from(text) });
const key = (repository: string, reference = 'latest', accept = ''): ManifestKey => ({ repository, key: `${repository}\n${reference}\n${accept}` });
const NO_CONNECTION: ReadonlySet<string> = new Set();
const V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI = 'application/vnd.oci.image.manifest.v1+json';

/** The key of a request as forward() makes it: from the headers it forwards, built from the raw ones. */
function keyOf(method: string, target: string, rawHeaders: string[]): string | null {
  const named = connectionTokens(rawHeaders);
  const upstream = buildUpstreamRequestHeaders(rawHeaders, { clientAddress: '192.0.2.1', host: 'gw.example' }, named);
  return manifestRequestKey(routed(method, target), upstream, named)?.key ?? null;
}
const keyFor = (headers: OutgoingHttpHeaders) => manifestRequestKey(routed('GET', '/v2/team/app/manifests/latest'), headers, NO_CONNECTION)?.key ?? null;

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('manifestRequestKey', () => {
  it('keys GET and HEAD of a manifest by repository, reference and Accept', () => {
    const a = manifestRequestKey(routed('GET', '/v2/team/app/manifests/latest'), { accept: OCI }, NO_CONNECTION);
    const b = manifestRequestKey(routed('HEAD', '/v2/team/app/manifests/latest'), { accept: OCI }, NO_CONNECTION);
    const c = manifestRequestKey(routed('GET', '/v2/team/app/manifests/latest'), { accept: V2 }, NO_CONNECTION);
    expect(a?.repository).toBe('team/app');
    expect(a?.key).toBe(b?.key);
    expect(c?.key).not.toBe(a?.key);
    expect(manifestRequestKey(routed('GET', `/v2/team/app/manifests/${DIGEST}`), {}, NO_CONNECTION)?.repository).toBe('team/app');
    expect(manifestRequestKey(routed('GET', '/v2/team/app/manifests/v1'), {}, NO_CONNECTION)?.key).not.toBe(manifestRequestKey(routed('GET', '/v2/team/app/manifests/v2'), {}, NO_CONNECTION)?.key);
  });

  it('leaves everything else to the upstream', () => {
    expect(manifestRequestKey(routed('PUT', '/v2/team/app/manifests/latest'), {}, NO_CONNECTION)).toBeNull();
    expect(manifestRequestKey(routed('DELETE', `/v2/team/app/manifests/${DIGEST}`), {}, NO_CONNECTION)).toBeNull();
    expect(manifestRequestKey(routed('GET', `/v2/team/app/blobs/${DIGEST}`), {}, NO_CONNECTION)).toBeNull();
    expect(manifestRequestKey(routed('GET', '/v2/team/app/tags/list'), {}, NO_CONNECTION)).toBeNull();
    expect(manifestRequestKey(routed('GET', '/v2/_catalog'), {}, NO_CONNECTION)).toBeNull();
    expect(manifestRequestKey(routed('GET', '/v2/team/app/manifests/latest?x=1'), {}, NO_CONNECTION)).toBeNull();
    expect(manifestRequestKey(routed('GET', '/v2/Team/app/manifests/latest'), {}, NO_CONNECTION)).toBeNull();
    for (const name of ['range', 'if-none-match', 'if-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'cache-control', 'pragma']) {
      expect(keyFor({ [name]: 'x' }), name).toBeNull();
    }
    expect(keyFor({ 'content-length': '3' })).toBeNull();
    expect(keyFor({ 'transfer-encoding': 'chunked' })).toBeNull();
  });

  it('keys the Accept lines the upstream is sent, each apart, none apart from an empty one', () => {
    const one = keyFor({ accept: V2 });
    const split = keyFor({ accept: [OCI, V2] });
    const joined = keyFor({ accept: `${OCI}, ${V2}` });
    const twice = keyFor({ accept: [V2, V2] });
    const none = keyFor({});
    const empty = keyFor({ accept: '' });
    const keys = [one, split, joined, twice, none, empty];
    expect(keys).not.toContain(null);
    expect(new Set(keys).size).toBe(keys.length);
    // A value holding a line break never arrives (Node refuses it), so no two sets of lines meet.
    expect(keyFor({ accept: [OCI, V2] })).toBe(split);
  });

  it('is made from the headers as forwarded: the name in any case, in the order sent', () => {
    const target = '/v2/team/app/manifests/latest';
    expect(keyOf('GET', target, ['Host', 'x', 'ACCEPT', V2])).toBe(keyOf('GET', target, ['accept', V2]));
    expect(keyOf('GET', target, ['Accept', OCI, 'Authorization', 'Basic x', 'accept', V2])).toBe(keyOf('GET', target, ['accept', OCI, 'Accept', V2]));
    expect(keyOf('GET', target, ['Accept', OCI, 'Accept', V2])).not.toBe(keyOf('GET', target, ['Accept', V2, 'Accept', OCI]));
    expect(keyOf('GET', target, ['Accept', V2, 'Connection', 'keep-alive'])).toBe(keyOf('GET', target, ['Accept', V2]));
    expect(keyOf('GET', target, ['Accept', V2, 'Connection', 'close'])).toBe(keyOf('GET', target, ['Accept', V2]));
  });

  it('is null when the Connection header names an end-to-end header, whichever', () => {
    const target = '/v2/team/app/manifests/latest';
    for (const rawHeaders of [
      ['Accept', V2, 'Connection', 'accept'],
      ['Accept', V2, 'Connection', 'Accept, keep-alive'],
      ['Accept', V2, 'Connection', 'keep-alive', 'Connection', 'ACCEPT'],
      ['Accept', V2, 'accept', V2, 'Connection', 'accept'],
      ['Connection', 'accept'],
      ['Accept', V2, 'Connection', 'user-agent'],
      ['Accept', V2, 'Connection', 'x-anything'],
    ]) {
      expect(keyOf('GET', target, rawHeaders), rawHeaders.join(' ')).toBeNull();
      expect(keyOf('HEAD', target, rawHeaders), rawHeaders.join(' ')).toBeNull();
    }
    // Connection options and headers that are hop-by-hop anyway change nothing the registry sees.
    for (const rawHeaders of [['Connection', 'close'], ['Connection', 'keep-alive, te'], ['Connection', 'Upgrade', 'Upgrade', 'x'], ['Connection', 'proxy-foo'], ['Connection', 'content-length, host']]) {
      expect(keyOf('GET', target, ['Accept', V2, ...rawHeaders]), rawHeaders.join(' ')).not.toBeNull();
    }
  });
});

describe('changedRepository', () => {
  it('names the repository of every request that may change it', () => {
    expect(changedRepository(routed('PUT', '/v2/team/app/manifests/latest'))).toBe('team/app');
    expect(changedRepository(routed('DELETE', `/v2/team/app/manifests/${DIGEST}`))).toBe('team/app');
    expect(changedRepository(routed('DELETE', `/v2/team/app/blobs/${DIGEST}`))).toBe('team/app');
    expect(changedRepository(routed('POST', '/v2/team/app/blobs/uploads/?mount=x&from=other/repo'))).toBe('team/app');
    expect(changedRepository(routed('PATCH', '/v2/team/app/blobs/uploads/abc-123'))).toBe('team/app');
  });

  it('is null for reads and for what is not a repository route', () => {
    expect(changedRepository(routed('GET', '/v2/team/app/manifests/latest'))).toBeNull();
    expect(changedRepository(routed('HEAD', '/v2/team/app/manifests/latest'))).toBeNull();
    expect(changedRepository(routed('DELETE', '/v2/'))).toBeNull();
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

  it('tells when every process has dropped: at once with no other process, else when the processes say so', () => {
    const single = createManifestCache({ ttlMs: 60_000 });
    let dropped = 0;
    single.changed('team/app', () => dropped++);
    expect(dropped).toBe(1); // before changed() returned

    let confirm: (() => void) | undefined;
    const clustered = createManifestCache({ ttlMs: 60_000, onChange: (_repository, done) => (confirm = done) });
    clustered.store(clustered.ticket('team/app'), key('team/app'), answer('app'));
    clustered.changed('team/app', () => dropped++);
    expect(clustered.lookup(key('team/app'))).toBeUndefined(); // this process's copies at once
    expect(dropped).toBe(1);
    confirm?.();
    expect(dropped).toBe(2);
  });

  it('after forgetting what changed in many repositories, refuses every ticket taken before', () => {
    const cache = createManifestCache({ ttlMs: 60_000 });
    const ticket = cache.ticket('team/app');
    for (let i = 0; i < 10_001; i++) cache.changed(`r/${i}`);
    expect(cache.store(ticket, key('team/app'), answer('x'))).toBe(false);
    expect(cache.store(cache.ticket('team/app'), key('team/app'), answer('x'))).toBe(true);
  });
});
