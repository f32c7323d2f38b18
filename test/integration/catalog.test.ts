// The paginated catalog, followed through its `Link: <...>; rel="next"` headers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { header, nextLink, pushImage, relativeOrPublicTarget } from '../helpers/registry-api.js';

const PUBLIC_URL = 'https://registry.example.test';

/** GETs `first`, then each next page, returning the repositories of every page and the links followed. */
async function walk(stack: TestStack, first: string, publicUrl: string | undefined) {
  const pages: string[][] = [];
  const links: string[] = [];
  let target: string | null = first;
  while (target !== null) {
    if (pages.length > 20) throw new Error(`more than 20 pages; links so far ${JSON.stringify(links)}`);
    const res = await stack.request(target);
    expect(res.status, `GET ${target}: ${res.text}`).toBe(200);
    pages.push((JSON.parse(res.text) as { repositories: string[] }).repositories);
    const link = nextLink(res);
    if (link !== null) links.push(link);
    target = link === null ? null : relativeOrPublicTarget(link, publicUrl);
  }
  return { pages, links };
}

for (const publicUrl of [undefined, PUBLIC_URL]) {
  const where = publicUrl === undefined ? 'without --public-url' : `with --public-url ${publicUrl}`;

  describe(`paginated catalog ${where}`, () => {
    let stack: TestStack;
    const repos = ['catalog/alpha', 'catalog/bravo', 'catalog/charlie', 'catalog/delta', 'catalog/echo'];

    beforeAll(async () => {
      stack = await startTestStack(publicUrl === undefined ? {} : { publicUrl });
      const options = publicUrl === undefined ? {} : { publicUrl };
      for (const repo of repos) await pushImage(stack, repo, 'v1', options);
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('walks the catalog two at a time, seeing every repository once', async () => {
      const { pages, links } = await walk(stack, '/v2/_catalog?n=2', publicUrl);
      const seen = pages.flat();
      expect([...seen].sort()).toEqual([...repos].sort());
      expect(new Set(seen).size).toBe(seen.length);
      for (const page of pages) expect(page.length).toBeLessThanOrEqual(2);
      // Five repositories, two per page: at least two next links were followed.
      expect(links.length).toBeGreaterThanOrEqual(2);
      for (const link of links) expect(relativeOrPublicTarget(link, publicUrl)).toMatch(/^\/v2\/_catalog\?/);
    });

    it('answers the whole catalog in one page without n, with no Link', async () => {
      const res = await stack.request('/v2/_catalog');
      expect(res.status).toBe(200);
      expect(res.headers.link).toBeUndefined();
      expect(header(res, 'content-type')).toMatch(/^application\/json/);
      expect((JSON.parse(res.text) as { repositories: string[] }).repositories).toHaveLength(repos.length);
    });
  });
}
