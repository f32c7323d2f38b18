// The pure parts of catalog filtering: reading a page, the client's n, and the page we answer.
import { describe, expect, it } from 'vitest';
import { nextTarget, pageOfAllowed, pageSize, parseCatalogPage } from '../../../src/access/catalog.js';

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

  it('takes the n the client asked for when the registry would', () => {
    expect(pageSize('n=2')).toBe(2);
    expect(pageSize('last=a&n=10')).toBe(10);
    for (const q of ['', 'n=', 'n=0', 'n=-1', 'n=abc', 'n=1.5']) expect(pageSize(q)).toBeNull();
  });

  it('answers n names and a Link after the last one shown, never a hidden one', () => {
    expect(pageOfAllowed(['a', 'b', 'c'], 2, 2, false)).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b&n=2' });
    expect(pageOfAllowed(['a', 'b'], 2, 2, true)).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b&n=2' });
    expect(pageOfAllowed(['a', 'b'], 2, 2, false)).toEqual({ repositories: ['a', 'b'], next: null });
    expect(pageOfAllowed(['a/b'], 1, 1, true)).toEqual({ repositories: ['a/b'], next: '/v2/_catalog?last=a%2Fb&n=1' });
    expect(pageOfAllowed([], 5, 5, false)).toEqual({ repositories: [], next: null });
  });

  it('without n, pages like the registry does by default, and the Link carries no n', () => {
    expect(pageOfAllowed(['a'], 100, null, false)).toEqual({ repositories: ['a'], next: null });
    expect(pageOfAllowed(['a', 'b', 'c'], 2, null, false)).toEqual({ repositories: ['a', 'b'], next: '/v2/_catalog?last=b' });
  });
});
