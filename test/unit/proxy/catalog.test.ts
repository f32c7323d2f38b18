// The pure parts of catalog filtering: reading a page, the client's n, and the page we answer.
import { describe, expect, it } from 'vitest';
import { isRepositoryName } from '../../../src/registry/routes.js';
import { CURSOR_PREFIX, isCursor, openCursor, sealCursor } from '../../../src/proxy/catalog-cursor.js';
import { nextTarget, pageOfAllowed, pageSize, parseCatalogPage } from '../../../src/proxy/catalog.js';

describe('catalog pages', () => {
  it('reads the repositories and the next page of a registry answer', () => {
    expect(parseCatalogPage(Buffer.from('{"repositories":["a","b/c"]}'), '</v2/_catalog?last=b%2Fc&n=2>; rel="next"')).toEqual({
      repositories: ['a', 'b/c'],
      next: '/v2/_catalog?last=b%2Fc&n=2',
    });
    expect(parseCatalogPage(Buffer.from('{"repositories":[]}'), undefined)).toEqual({ repositories: [], next: null });
  });

  it('refuses an answer that is not a catalog', () => {
    for (const body of ['', 'null', '{}', '{"repositories":"a"}', '{"repositories":[1]}', '[]']) expect(parseCatalogPage(Buffer.from(body), undefined)).toBeNull();
  });

  it('follows only a next link to the catalog, whatever origin the registry put on it', () => {
    expect(nextTarget('<http://127.0.0.1:5000/v2/_catalog?last=x&n=1>; rel="next"')).toBe('/v2/_catalog?last=x&n=1');
    expect(nextTarget('</v2/other?last=x>; rel="next"')).toBeNull();
    expect(nextTarget('</v2/_catalog?last=x>; rel="prev"')).toBeNull();
    expect(nextTarget(['</v2/_catalog?last=y>; rel=next'])).toBe('/v2/_catalog?last=y');
  });

  it('takes the n the client asked for as the registry would, and its default otherwise', () => {
    expect(pageSize('n=2')).toBe(2);
    expect(pageSize('last=a&n=10')).toBe(10);
    expect(pageSize('n=0')).toBe(0);
    expect(pageSize('n=%2B5')).toBe(5);
    expect(pageSize('n=007')).toBe(7);
    expect(pageSize('n=5000')).toBe(5000);
    for (const q of ['', 'n=', 'n=-1', 'n=abc', 'n=1.5', 'n=1e3']) expect(pageSize(q)).toBe(100);
  });
});

describe('the filtered page', () => {
  const walked = (allowed: string[], upstreamHasMore: boolean, lastRead: string | null = allowed[allowed.length - 1] ?? null) => ({ allowed, upstreamHasMore, lastRead });

  it('answers n names and a Link after the last one shown', () => {
    expect(pageOfAllowed(walked(['a', 'b', 'c'], false), 2, '2')).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b&n=2' });
    expect(pageOfAllowed(walked(['a', 'b'], true), 2, '2')).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b&n=2' });
    expect(pageOfAllowed(walked(['a', 'b'], false), 2, '2')).toEqual({ repositories: ['a', 'b'], next: null });
    expect(pageOfAllowed(walked(['a/b'], true), 1, '1')).toEqual({ repositories: ['a/b'], next: '/v2/_catalog?last=a%2Fb&n=1' });
    expect(pageOfAllowed(walked([], false), 5, '5')).toEqual({ repositories: [], next: null });
    // A page filled by names read before hidden ones still continues after the last name shown.
    expect(pageOfAllowed(walked(['a', 'b'], true, 'z-hidden'), 2, '2')).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b&n=2' });
  });

  it('without n, pages like the registry does by default, and the Link carries no n', () => {
    expect(pageOfAllowed(walked(['a'], false), 100, null)).toEqual({ repositories: ['a'], next: null });
    expect(pageOfAllowed(walked(['a', 'b', 'c'], false), 2, null)).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b' });
  });

  it('n=0 answers nothing and no Link, as the registry does', () => {
    expect(pageOfAllowed(walked([], true, null), 0, '0')).toEqual({ repositories: [], next: null });
  });

  it('stopped by the page bound before the page is full: a sealed cursor after the last name read, never the name', () => {
    for (const [allowed, lastRead] of [[[], 'secret/hidden'], [['a'], 'secret/hidden']] as const) {
      const page = pageOfAllowed(walked([...allowed], true, lastRead), 3, '3');
      expect(page.repositories).toEqual(allowed);
      const last = new URL(page.next!, 'https://x').searchParams.get('last')!;
      expect(page.next).not.toContain('secret');
      expect(page.next).toMatch(/&n=3$/);
      expect(isCursor(last)).toBe(true);
      expect(openCursor(last)).toBe(lastRead);
    }
  });
});

describe('catalog cursors', () => {
  it('open to the name they were sealed from', () => {
    for (const name of ['a', 'secret/app', 'x'.repeat(255), `${'a/'.repeat(127)}b`]) expect(openCursor(sealCursor(name))).toBe(name);
  });

  it('are all the same length, whatever the name, and differ each time', () => {
    const lengths = new Set(['a', 'secret/app', 'x'.repeat(255)].map((name) => sealCursor(name).length));
    expect(lengths.size).toBe(1);
    expect(sealCursor('a')).not.toBe(sealCursor('a'));
  });

  it('are never taken for repository names, and never hold the name', () => {
    const cursor = sealCursor('secret/app');
    expect(cursor.startsWith(CURSOR_PREFIX)).toBe(true);
    expect(isRepositoryName(cursor)).toBe(false);
    expect(Buffer.from(cursor.slice(1), 'base64url').includes('secret')).toBe(false);
  });

  it('refuse anything they did not seal: tampered, truncated, made up', () => {
    const cursor = sealCursor('secret/app');
    const raw = Buffer.from(cursor.slice(1), 'base64url');
    raw[raw.length - 1]! ^= 1;
    expect(openCursor(CURSOR_PREFIX + raw.toString('base64url'))).toBeNull();
    expect(openCursor(cursor.slice(0, -4))).toBeNull();
    expect(openCursor('~')).toBeNull();
    expect(openCursor('~secret')).toBeNull();
    expect(openCursor('secret/app')).toBeNull();
  });
});
