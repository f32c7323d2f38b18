// The web UI's pages: whole documents, every registry or user value escaped, nothing inline for
// the CSP to refuse, labelled inputs, URL-encoded links; and the assets the pages link to.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ASSETS, SCRIPT_PATH, STYLESHEET_PATH } from '../../../src/web/assets.js';
import {
  confirmDeletePage,
  CONTENT_SECURITY_POLICY,
  loginPage,
  messagePage,
  pageHeaders,
  repositoriesPage,
  repositoryPage,
  shortDigest,
} from '../../../src/web/pages.js';
import type { TagView } from '../../../src/web/view.js';

const SCRIPT = '<script>alert(1)</script>';
const BREAKOUT = '"><img src=x onerror=alert(1)>';
const QUOTES = `it's "quoted" \`too\``;
const NASTY = [SCRIPT, BREAKOUT, QUOTES];
const DIGEST = `sha256:${'ab12'.repeat(16)}`;

interface Tag {
  readonly name: string;
  readonly attributes: ReadonlyMap<string, string>;
}

/** Every start tag of a document with its attributes (values as written, still escaped). */
function tagsOf(page: string): Tag[] {
  return [...page.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)((?:\s[^>]*)?)>/g)].map((m) => {
    const attributes = new Map<string, string>();
    for (const a of m[2]!.matchAll(/([^\s"'=<>`/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
      attributes.set(a[1]!.toLowerCase(), a[2] ?? a[3] ?? a[4] ?? '');
    }
    return { name: m[1]!.toLowerCase(), attributes };
  });
}

function decode(value: string): string {
  return value.replace(/&(amp|lt|gt|quot|#39|#96);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#96': '`' })[e]!);
}

function tag(view: Partial<TagView> & { tag: string }): TagView {
  return { digest: DIGEST, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 12_300_000, created: '2024-05-06T07:08:09Z', platforms: [], pushedBy: null, pushedAt: null, ...view };
}

/** Each page, filled with hostile values wherever a value goes. */
function hostilePages(bad: string): Record<string, string> {
  const session = { user: bad, csrf: bad };
  return {
    login: loginPage({ error: bad, username: bad, retryAfterS: 30, next: bad, csrf: bad }),
    repositories: repositoriesPage({ ...session, repositories: { items: [bad, 'web/alpha'], next: bad }, query: bad, host: bad }),
    repositoriesEmpty: repositoriesPage({ ...session, repositories: { items: [], next: null }, query: bad, host: bad }),
    repository: repositoryPage({
      ...session,
      repository: bad,
      host: bad,
      canDelete: true,
      message: bad,
      tags: {
        items: [
          tag({ tag: bad, digest: bad, created: bad, pushedBy: bad, pushedAt: bad, mediaType: bad }),
          tag({ tag: 'multi', platforms: [{ os: bad, architecture: bad, variant: bad, size: 1 }], size: null }),
        ],
        next: bad,
      },
    }),
    confirmDelete: confirmDeletePage({ ...session, repository: bad, reference: bad, digest: bad, otherTags: [bad, 'v2'] }),
    message: messagePage({ ...session, title: bad, message: bad, status: 404 }),
  };
}

describe.each(NASTY)('pages filled with %s', (bad) => {
  const pages = hostilePages(bad);

  it.each(Object.keys(pages))('%s: shows the value only escaped', (name) => {
    const page = pages[name]!;
    expect(page).not.toContain(bad);
    expect(page).not.toMatch(/<img/i);
    // The only script element is the app's own, from its own origin.
    expect([...page.matchAll(/<script\b[^>]*>/gi)].map((m) => m[0])).toEqual([`<script src="${SCRIPT_PATH}" defer>`]);
  });

  it.each(Object.keys(pages))('%s: no inline style or script, no event-handler attributes, no javascript: URLs', (name) => {
    const page = pages[name]!;
    expect(page).not.toMatch(/<style/i);
    for (const t of tagsOf(page)) {
      for (const [attribute, value] of t.attributes) {
        expect(attribute, `<${t.name} ${attribute}>`).not.toMatch(/^on|^style$/);
        if (attribute === 'href' || attribute === 'action' || attribute === 'src') expect(decode(value)).toMatch(/^(\/(?!\/)|#[a-z])/);
      }
      if (t.name === 'script') expect(t.attributes.has('src')).toBe(true);
    }
  });

  it.each(Object.keys(pages))('%s: every input other than hidden ones has its label', (name) => {
    const page = pages[name]!;
    const labels = new Set(tagsOf(page).filter((t) => t.name === 'label').map((t) => t.attributes.get('for')));
    const inputs = tagsOf(page).filter((t) => t.name === 'input' && t.attributes.get('type') !== 'hidden');
    for (const input of inputs) {
      expect(input.attributes.get('id')).toBeTruthy();
      expect(labels.has(input.attributes.get('id'))).toBe(true);
    }
    const ids = tagsOf(page).flatMap((t) => (t.attributes.has('id') ? [t.attributes.get('id')] : []));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('URL-encodes names in links', () => {
    const hrefs = tagsOf(pages.repository!).flatMap((t) => (t.name === 'a' ? [decode(t.attributes.get('href')!)] : []));
    const encoded = new URLSearchParams({ name: bad }).toString();
    expect(hrefs).toContain(`/ui/repository?${encoded}`);
    expect(hrefs).toContain(`/ui/delete?${encoded}&${new URLSearchParams({ reference: bad })}`);
    expect(hrefs).toContain(`/ui/repository?${encoded}&${new URLSearchParams({ last: bad })}`);
    const repoHrefs = tagsOf(pages.repositories!).flatMap((t) => (t.name === 'a' ? [decode(t.attributes.get('href')!)] : []));
    expect(repoHrefs).toContain(`/ui/repository?${encoded}`);
    expect(repoHrefs).toContain(`/?${new URLSearchParams({ q: bad, last: bad })}`);
  });
});

describe('every page', () => {
  const pages = hostilePages('user');

  it.each(Object.keys(pages))('%s: is a whole document with the frame', (name) => {
    const page = pages[name]!;
    expect(page.startsWith('<!doctype html>\n<html lang="en">')).toBe(true);
    expect(page).toContain('<meta charset="utf-8">');
    expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(page).toMatch(/<title>[^<]+ · registry-gateway<\/title>/);
    expect(page).toContain(`<link rel="stylesheet" href="${STYLESHEET_PATH}">`);
    expect(page).toContain(`<script src="${SCRIPT_PATH}" defer></script>`);
    expect(page).toMatch(/<a class="skip-link" href="#main">/);
    expect(page).toMatch(/<header[^>]*>[\s\S]*registry-gateway[\s\S]*<\/header>/);
    expect(page).toContain('<main id="main"');
    expect(page).toContain('aria-live="polite"');
  });

  it.each(['repositories', 'repository', 'confirmDelete', 'message'])('%s: signed in, names the user and offers sign-out by POST with the CSRF token', (name) => {
    const page = pages[name]!;
    expect(page).toMatch(/Signed in as <strong>user<\/strong>/);
    expect(page).toMatch(/<form method="post" action="\/ui\/logout">\s*<input type="hidden" name="csrf" value="user">\s*<button type="submit"/);
  });

  it('login and a message to nobody signed in have no sign-out', () => {
    expect(pages.login).not.toContain('/ui/logout');
    expect(messagePage({ user: null, csrf: null, title: 'Unavailable', message: 'the registry is unavailable', status: 502 })).not.toContain('/ui/logout');
  });

  it('lists are tables with column headers', () => {
    for (const page of [pages.repositories!, pages.repository!]) {
      expect(page).toContain('<table');
      expect(page).toMatch(/<th scope="col">/);
    }
  });
});

describe('loginPage', () => {
  it('posts user name, password and where to go next', () => {
    const page = loginPage({ error: null, username: 'alice', retryAfterS: null, next: '/ui/repository?name=a', csrf: 'tok' });
    const tags = tagsOf(page);
    const form = tags.find((t) => t.name === 'form')!;
    expect(form.attributes.get('method')).toBe('post');
    expect(form.attributes.get('action')).toBe('/ui/login');
    const input = (name: string): Tag => tags.find((t) => t.name === 'input' && t.attributes.get('name') === name)!;
    expect(input('username').attributes.get('autocomplete')).toBe('username');
    expect(input('username').attributes.get('value')).toBe('alice');
    expect(input('password').attributes.get('type')).toBe('password');
    expect(input('password').attributes.get('autocomplete')).toBe('current-password');
    expect(input('password').attributes.has('value')).toBe(false);
    expect(input('next').attributes.get('type')).toBe('hidden');
    expect(decode(input('next').attributes.get('value')!)).toBe('/ui/repository?name=a');
    expect(input('csrf').attributes.get('value')).toBe('tok');
    expect(page).not.toContain('role="alert"');
  });

  it('shows an error and the throttle in an alert', () => {
    const page = loginPage({ error: 'Wrong user name or password', username: '', retryAfterS: 42, next: '/' });
    expect(page).toMatch(/<div class="notice error" role="alert"><p>Wrong user name or password<\/p><p>Too many failed sign-ins: try again in 42 s<\/p><\/div>/);
    expect(page).not.toContain('name="csrf"');
  });
});

describe('repositoriesPage', () => {
  const base = { user: 'u', csrf: 'c', query: '', host: 'registry.example.com:5443' };

  it('searches with GET / and q', () => {
    const page = repositoriesPage({ ...base, repositories: { items: ['web/alpha'], next: null } });
    expect(page).toMatch(/<form class="search" method="get" action="\/" role="search">/);
    expect(page).toMatch(/<label for="q">[^<]+<\/label>\s*<input id="q" name="q" type="search" value=""/);
    expect(page).toContain('<a href="/ui/repository?name=web%2Falpha">web/alpha</a>');
    expect(page).toContain('registry.example.com:5443/web/alpha');
    expect(page).not.toContain('Next page');
  });

  it('links the next page, keeping the query', () => {
    expect(repositoriesPage({ ...base, repositories: { items: ['a'], next: 'a' } })).toContain('<a href="/?last=a" rel="next">Next page</a>');
    expect(repositoriesPage({ ...base, query: 'we b', repositories: { items: ['a'], next: 'a' } })).toContain('<a href="/?q=we+b&amp;last=a" rel="next">Next page</a>');
  });

  it('says why the list is empty', () => {
    expect(repositoriesPage({ ...base, repositories: { items: [], next: null } })).toContain('No repositories you may pull');
    expect(repositoriesPage({ ...base, query: 'zz', repositories: { items: [], next: null } })).toContain('No repositories match “zz”');
  });
});

describe('repositoryPage', () => {
  const base = { user: 'u', csrf: 'c', repository: 'web/alpha', host: 'registry.example.com:5443', message: null };
  const tags = {
    items: [
      tag({ tag: 'v1', pushedBy: 'alice', pushedAt: '2024-06-01T10:20:30Z' }),
      tag({
        tag: 'multi',
        mediaType: 'application/vnd.oci.image.index.v1+json',
        size: 12_000_000,
        platforms: [
          { os: 'linux', architecture: 'amd64', variant: null, size: 12_000_000 },
          { os: 'linux', architecture: 'arm64', variant: 'v8', size: 11_000_000 },
          { os: 'linux', architecture: 's390x', variant: null, size: null },
        ],
      }),
    ],
    next: 'v1',
  };

  it('shows each tag: short digest with the full one in title, size, created, who pushed', () => {
    const page = repositoryPage({ ...base, tags, canDelete: false });
    expect(page).toContain(`<code title="${DIGEST}">${shortDigest(DIGEST)}</code>`);
    expect(shortDigest(DIGEST)).toBe(`sha256:${'ab12'.repeat(3)}`);
    expect(page).toContain('12.3 MB');
    expect(page).toContain('2024-05-06 07:08 UTC');
    expect(page).toContain('alice, 2024-06-01 10:20 UTC');
    expect(page).toContain('not recorded');
    expect(page).toContain('<li>linux/amd64 (12 MB)</li><li>linux/arm64/v8 (11 MB)</li><li>linux/s390x (size unknown)</li>');
  });

  it('offers the pull lines, by tag and by digest, in readonly fields with Copy buttons', () => {
    const page = repositoryPage({ ...base, tags, canDelete: false });
    const pull = 'docker pull registry.example.com:5443/web/alpha:v1';
    expect(page).toMatch(new RegExp(`<input class="copy-line" id="pull-0" type="text" readonly value="${pull}"`));
    expect(page).toContain(`data-copy="${pull}" hidden`);
    expect(page).toContain(`data-copy="docker pull registry.example.com:5443/web/alpha@${DIGEST}"`);
  });

  it('links Delete… to the confirmation page only when the user may delete', () => {
    expect(repositoryPage({ ...base, tags, canDelete: false })).not.toContain('/ui/delete');
    const page = repositoryPage({ ...base, tags, canDelete: true });
    expect(page).toContain('<a href="/ui/delete?name=web%2Falpha&amp;reference=v1">Delete…');
    expect(page).toContain('<th scope="col">Actions</th>');
  });

  it('links the next page and shows a notice', () => {
    const page = repositoryPage({ ...base, tags, canDelete: false, message: 'Deleted web/alpha:v0.' });
    expect(page).toContain('<a href="/ui/repository?name=web%2Falpha&amp;last=v1" rel="next">Next page</a>');
    expect(page).toContain('<p class="notice ok" role="status">Deleted web/alpha:v0.</p>');
  });

  it('says when there are no tags', () => {
    expect(repositoryPage({ ...base, tags: { items: [], next: null }, canDelete: true })).toContain('This repository has no tags');
  });
});

describe('confirmDeletePage', () => {
  const page = confirmDeletePage({ user: 'u', csrf: 'tok', repository: 'web/alpha', reference: 'v1', digest: DIGEST, otherTags: ['latest', 'v2'] });

  it('has two forms posting to /ui/delete with the CSRF token, the name, the tag and what to delete', () => {
    const forms = [...page.matchAll(/<form method="post" action="\/ui\/delete">([\s\S]*?)<\/form>/g)].map((m) => m[1]!);
    expect(forms).toHaveLength(2);
    forms.forEach((form, i) => {
      const hidden = Object.fromEntries(tagsOf(form).filter((t) => t.name === 'input').map((t) => [t.attributes.get('name'), t.attributes.get('value')]));
      expect(hidden).toMatchObject({ csrf: 'tok', name: 'web/alpha', reference: 'v1', what: i === 0 ? 'tag' : 'manifest' });
    });
    expect(forms[0]).toContain('Delete tag v1</button>');
    expect(forms[1]).toContain(`Delete manifest ${shortDigest(DIGEST)}</button>`);
    expect(forms[1]).toContain(`name="digest" value="${DIGEST}"`);
  });

  it('lists the other tags the manifest takes with it, and cancels back to the repository', () => {
    expect(page).toContain('<li><code>latest</code></li><li><code>v2</code></li>');
    expect(page).toMatch(/<a class="button secondary" href="\/ui\/repository\?name=web%2Falpha">Cancel<\/a>/);
    expect(confirmDeletePage({ user: 'u', csrf: 't', repository: 'r', reference: 'v1', digest: DIGEST, otherTags: [] })).toContain('No other tag points at it');
  });
});

describe('messagePage', () => {
  it('shows an error as an alert with its status', () => {
    const page = messagePage({ user: 'u', csrf: 'c', title: 'Not found', message: 'There is no such page.', status: 404 });
    expect(page).toContain('<h1>Not found</h1>');
    expect(page).toContain('role="alert">There is no such page.</p>');
    expect(page).toContain('<a href="/">Back to repositories</a>');
  });
});

describe('pageHeaders', () => {
  it('are the security headers of every page', () => {
    expect(pageHeaders).toEqual({
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'same-origin',
      'cache-control': 'no-store',
      'x-frame-options': 'DENY',
    });
    expect(pageHeaders['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(Object.isFrozen(pageHeaders)).toBe(true);
  });
});

describe('assets', () => {
  it('serves the stylesheet and the script under names holding their content hash', () => {
    expect([...ASSETS.keys()].sort()).toEqual([STYLESHEET_PATH, SCRIPT_PATH].sort());
    expect(STYLESHEET_PATH).toMatch(/^\/ui\/assets\/app\.[0-9a-f]{8}\.css$/);
    expect(SCRIPT_PATH).toMatch(/^\/ui\/assets\/app\.[0-9a-f]{8}\.js$/);
    for (const [path, asset] of ASSETS) {
      const hash = createHash('sha256').update(asset.body).digest('hex');
      expect(path).toContain(`.${hash.slice(0, 8)}.`);
      expect(asset.etag).toBe(`"${hash.slice(0, 32)}"`);
    }
    expect(ASSETS.get(STYLESHEET_PATH)!.type).toBe('text/css; charset=utf-8');
    expect(ASSETS.get(SCRIPT_PATH)!.type).toBe('text/javascript; charset=utf-8');
  });

  it('fetch nothing from elsewhere, and the script only copies', () => {
    for (const asset of ASSETS.values()) {
      const text = asset.body.toString('utf8');
      expect(text).not.toMatch(/https?:|url\(|@import|\/\/[a-z]/i);
    }
    const script = ASSETS.get(SCRIPT_PATH)!.body.toString('utf8');
    expect(script).not.toMatch(/fetch|XMLHttpRequest|eval|innerHTML|confirm\(|document\.write/);
    expect(script).toContain('navigator.clipboard');
    expect(script).toContain("announce('Copied')");
    // It parses as a script.
    expect(() => new Function(script)).not.toThrow();
  });

  it('styles for phones, dark mode and visible focus', () => {
    const css = ASSETS.get(STYLESHEET_PATH)!.body.toString('utf8');
    expect(css).toContain('@media (max-width: 640px)');
    expect(css).toContain('@media (prefers-color-scheme: dark)');
    expect(css).toContain(':focus-visible');
    expect(css).toContain('system-ui');
  });
});
