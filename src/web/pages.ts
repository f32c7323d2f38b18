// The web UI's pages: pure functions from plain data to whole HTML documents. Every value shown
// comes from the registry or a user and goes through `html` (html.ts), which escapes it. The pages
// carry no inline script or style and no event-handler attributes, so they work under the strict
// Content-Security-Policy of `pageHeaders`; the one script (assets.ts) only adds Copy buttons, and
// every page works without it: deleting goes through a confirmation page, never a JS dialog.

import { SCRIPT_PATH, STYLESHEET_PATH } from './assets.js';
import { formatBytes, formatTime, html, type SafeHtml } from './html.js';
import type { ListPage, Platform, TagView } from './view.js';

export const PRODUCT_NAME = 'registry-gateway';

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The headers every page is sent with (the handler adds content-length). */
export const pageHeaders: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
});

/** Who is signed in, and the token their forms must carry back; null on the sign-in page. */
interface Session {
  readonly user: string;
  readonly csrf: string;
}

export interface LoginPageData {
  readonly error: string | null;
  /** What the user typed last, to fill the field again. */
  readonly username: string;
  /** Set while the login throttle refuses this user: seconds to wait. */
  readonly retryAfterS: number | null;
  /** Where to go once signed in (a local path, checked by the handler). */
  readonly next: string;
  /** The sign-in form's own CSRF token (login CSRF), sent back in a hidden `csrf` field; none when absent. */
  readonly csrf?: string | null;
}

export interface RepositoriesPageData extends Session {
  readonly repositories: ListPage<string>;
  readonly query: string;
  /** The registry host clients use, e.g. registry.example.com:5443. */
  readonly host: string;
}

export interface RepositoryPageData extends Session {
  readonly repository: string;
  readonly tags: ListPage<TagView>;
  readonly host: string;
  readonly canDelete: boolean;
  /** A notice after an action, e.g. "Deleted …"; null for none. */
  readonly message: string | null;
}

export interface ConfirmDeletePageData extends Session {
  readonly repository: string;
  /** The tag the user chose to delete. */
  readonly reference: string;
  /** The digest the tag points at now. */
  readonly digest: string;
  /** The other tags pointing at the same digest, which deleting the manifest removes too. */
  readonly otherTags: readonly string[];
}

export interface MessagePageData {
  /** Null when nobody is signed in (the header then shows no sign-out). */
  readonly user: string | null;
  readonly csrf: string | null;
  readonly title: string;
  readonly message: string;
  /** The HTTP status the page is sent with. */
  readonly status: number;
}

// --- links ---------------------------------------------------------------------------------

function withQuery(path: string, params: ReadonlyArray<readonly [string, string]>): string {
  const query = new URLSearchParams(params.map(([k, v]) => [k, v])).toString();
  return query === '' ? path : `${path}?${query}`;
}

export function repositoryHref(repository: string, last: string | null = null): string {
  return withQuery('/ui/repository', last === null ? [['name', repository]] : [['name', repository], ['last', last]]);
}

export function deleteHref(repository: string, tag: string): string {
  return withQuery('/ui/delete', [['name', repository], ['reference', tag]]);
}

function repositoriesHref(query: string, last: string): string {
  return withQuery('/', query === '' ? [['last', last]] : [['q', query], ['last', last]]);
}

// --- the frame every page shares -----------------------------------------------------------

function signOutForm(session: Session): SafeHtml {
  return html`<div class="session">
      <span>Signed in as <strong>${session.user}</strong></span>
      <form method="post" action="/ui/logout">
        <input type="hidden" name="csrf" value="${session.csrf}">
        <button type="submit" class="secondary">Sign out</button>
      </form>
    </div>`;
}

function renderDocument(title: string, session: Session | null, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${title} · ${PRODUCT_NAME}</title>
  <link rel="stylesheet" href="${STYLESHEET_PATH}">
  <script src="${SCRIPT_PATH}" defer></script>
</head>
<body>
  <a class="skip-link" href="#main">Skip to main content</a>
  <header class="site-header">
    <a class="brand" href="/">${PRODUCT_NAME}</a>
    ${session === null ? null : signOutForm(session)}
  </header>
  <main id="main" tabindex="-1">
${body}
  </main>
  <p id="announcer" class="visually-hidden" aria-live="polite"></p>
</body>
</html>
`.toString();
}

function breadcrumb(repository: string | null): SafeHtml {
  const here = repository === null ? null : html`<li><a href="${repositoryHref(repository)}" aria-current="page">${repository}</a></li>`;
  return html`<nav class="breadcrumb" aria-label="Breadcrumb"><ol><li><a href="/">Repositories</a></li>${here}</ol></nav>`;
}

/** A readonly field holding text to copy, with the Copy button the script reveals. */
function copyField(id: string, label: string, text: string): SafeHtml {
  return html`<div class="copy-group">
        <label class="visually-hidden" for="${id}">${label}</label>
        <input class="copy-line" id="${id}" type="text" readonly value="${text}" spellcheck="false">
        <button type="button" class="copy secondary" data-copy="${text}" hidden aria-label="Copy: ${label}">Copy</button>
      </div>`;
}

// --- sign-in -------------------------------------------------------------------------------

export function loginPage(data: LoginPageData): string {
  const problems: string[] = [];
  if (data.error !== null) problems.push(data.error);
  if (data.retryAfterS !== null) problems.push(`Too many failed sign-ins: try again in ${Math.max(1, Math.ceil(data.retryAfterS))} s`);
  const alert = problems.length === 0 ? null : html`<div class="notice error" role="alert">${problems.map((p) => html`<p>${p}</p>`)}</div>`;
  return renderDocument(
    'Sign in',
    null,
    html`    <h1>Sign in</h1>
    ${alert}
    <form method="post" action="/ui/login">
      <input type="hidden" name="next" value="${data.next}">
      ${data.csrf === undefined || data.csrf === null ? null : html`<input type="hidden" name="csrf" value="${data.csrf}">`}
      <div class="field">
        <label for="username">User name</label>
        <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${data.username}">
      </div>
      <div class="field">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
      </div>
      <button type="submit">Sign in</button>
    </form>`,
  );
}

// --- repositories --------------------------------------------------------------------------

export function repositoriesPage(data: RepositoriesPageData): string {
  const { items, next } = data.repositories;
  const rows = items.map(
    (name) => html`
        <tr><td data-label="Repository"><a href="${repositoryHref(name)}">${name}</a></td><td data-label="Registry path" class="mono">${data.host}/${name}</td></tr>`,
  );
  const empty = data.query === '' ? html`No repositories you may pull.` : html`No repositories match “${data.query}”.`;
  const list =
    items.length === 0
      ? html`<p class="empty">${empty}</p>`
      : html`<table class="cards">
      <caption class="visually-hidden">Repositories</caption>
      <thead><tr><th scope="col">Repository</th><th scope="col">Registry path</th></tr></thead>
      <tbody>${rows}
      </tbody>
    </table>`;
  const pager = next === null ? null : html`<p class="pager"><a href="${repositoriesHref(data.query, next)}" rel="next">Next page</a></p>`;
  return renderDocument(
    'Repositories',
    data,
    html`    <h1>Repositories</h1>
    <form class="search" method="get" action="/" role="search">
      <div class="field">
        <label for="q">Search repositories</label>
        <input id="q" name="q" type="search" value="${data.query}" spellcheck="false">
      </div>
      <button type="submit">Search</button>
    </form>
    ${list}
    ${pager}`,
  );
}

// --- one repository's tags -----------------------------------------------------------------

/** sha256:0123456789ab: enough to tell digests apart at a glance; the full one is in `title`. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon === -1 ? digest.slice(0, 12) : digest.slice(0, colon + 1 + 12);
}

function platformName(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((part) => part !== null && part !== '').join('/');
}

function sizeCell(tag: TagView): SafeHtml {
  if (tag.platforms.length === 0) return html`${tag.size === null ? 'unknown' : formatBytes(tag.size)}`;
  const items = tag.platforms.map((p) => html`<li>${platformName(p)} (${p.size === null ? 'size unknown' : formatBytes(p.size)})</li>`);
  return html`<ul class="platforms">${items}</ul>`;
}

function pushedCell(tag: TagView): SafeHtml {
  if (tag.pushedBy === null) return html`<span class="muted">not recorded</span>`;
  return tag.pushedAt === null ? html`${tag.pushedBy}` : html`${tag.pushedBy}, ${formatTime(tag.pushedAt)}`;
}

function tagRow(data: RepositoryPageData, tag: TagView, index: number): SafeHtml {
  const pull = `docker pull ${data.host}/${data.repository}:${tag.tag}`;
  // The full digest, in the line that pins it: what a deployment pulls to get exactly this image.
  const pullByDigest = `docker pull ${data.host}/${data.repository}@${tag.digest}`;
  const remove = data.canDelete
    ? html`<td data-label="Actions"><a href="${deleteHref(data.repository, tag.tag)}">Delete…<span class="visually-hidden"> tag ${tag.tag}</span></a></td>`
    : null;
  return html`
        <tr>
          <th scope="row" data-label="Tag">${tag.tag}</th>
          <td data-label="Digest"><code title="${tag.digest}">${shortDigest(tag.digest)}</code></td>
          <td data-label="Size">${sizeCell(tag)}</td>
          <td data-label="Created">${tag.created === null ? html`<span class="muted">unknown</span>` : formatTime(tag.created)}</td>
          <td data-label="Pushed by">${pushedCell(tag)}</td>
          <td data-label="Pull">${copyField(`pull-${index}`, `docker pull command for ${tag.tag}`, pull)}
            ${copyField(`pull-digest-${index}`, `docker pull command by digest for ${tag.tag}`, pullByDigest)}</td>
          ${remove}
        </tr>`;
}

export function repositoryPage(data: RepositoryPageData): string {
  const { items, next } = data.tags;
  const notice = data.message === null ? null : html`<p class="notice ok" role="status">${data.message}</p>`;
  const list =
    items.length === 0
      ? html`<p class="empty">This repository has no tags.</p>`
      : html`<table class="cards">
      <caption class="visually-hidden">Tags of ${data.repository}</caption>
      <thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col">Size</th><th scope="col">Created</th><th scope="col">Pushed by</th><th scope="col">Pull</th>${
        data.canDelete ? html`<th scope="col">Actions</th>` : null
      }</tr></thead>
      <tbody>${items.map((tag, i) => tagRow(data, tag, i))}
      </tbody>
    </table>`;
  const pager = next === null ? null : html`<p class="pager"><a href="${repositoryHref(data.repository, next)}" rel="next">Next page</a></p>`;
  return renderDocument(
    data.repository,
    data,
    html`    ${breadcrumb(data.repository)}
    <h1>${data.repository}</h1>
    ${notice}
    ${list}
    ${pager}`,
  );
}

// --- deleting ------------------------------------------------------------------------------

function deleteForm(data: ConfirmDeletePageData, what: 'tag' | 'manifest', label: SafeHtml): SafeHtml {
  // The manifest form also carries the digest the user saw, so the handler deletes exactly that
  // manifest even if the tag was moved meanwhile.
  const digest = what === 'manifest' ? html`<input type="hidden" name="digest" value="${data.digest}">` : null;
  return html`<form method="post" action="/ui/delete">
        <input type="hidden" name="csrf" value="${data.csrf}">
        <input type="hidden" name="name" value="${data.repository}">
        <input type="hidden" name="reference" value="${data.reference}">
        <input type="hidden" name="what" value="${what}">
        ${digest}
        <button type="submit" class="danger">${label}</button>
      </form>`;
}

export function confirmDeletePage(data: ConfirmDeletePageData): string {
  const others =
    data.otherTags.length === 0
      ? html`<p>No other tag points at it.</p>`
      : html`<p>These tags point at it too and will be removed with it:</p>
      <ul>${data.otherTags.map((t) => html`<li><code>${t}</code></li>`)}</ul>`;
  return renderDocument(
    `Delete ${data.reference}`,
    data,
    html`    ${breadcrumb(data.repository)}
    <h1>Delete ${data.repository}:${data.reference}?</h1>
    <p>The tag <code>${data.reference}</code> points at the manifest <code title="${data.digest}">${shortDigest(data.digest)}</code>.</p>
    <section class="choice" aria-labelledby="delete-tag">
      <h2 id="delete-tag">Only the tag</h2>
      <p>Removes the tag <code>${data.reference}</code>; the manifest stays, with any other tags. Not every registry can delete a tag by itself: if this one cannot, nothing is deleted and you are told so.</p>
      ${deleteForm(data, 'tag', html`Delete tag ${data.reference}`)}
    </section>
    <section class="choice" aria-labelledby="delete-manifest">
      <h2 id="delete-manifest">The manifest</h2>
      <p>Removes the manifest <code class="mono">${data.digest}</code> and every tag pointing at it.</p>
      ${others}
      ${deleteForm(data, 'manifest', html`Delete manifest ${shortDigest(data.digest)}`)}
    </section>
    <p><a class="button secondary" href="${repositoryHref(data.repository)}">Cancel</a></p>`,
  );
}

// --- messages ------------------------------------------------------------------------------

export function messagePage(data: MessagePageData): string {
  const session = data.user === null || data.csrf === null ? null : { user: data.user, csrf: data.csrf };
  const onward = session === null ? html`<a href="/ui/login">Sign in</a>` : html`<a href="/">Back to repositories</a>`;
  const role = data.status >= 400 ? 'alert' : 'status';
  return renderDocument(
    data.title,
    session,
    html`    <h1>${data.title}</h1>
    <p class="notice ${data.status >= 400 ? 'error' : 'ok'}" role="${role}">${data.message}</p>
    <p class="muted">HTTP status ${data.status}</p>
    <p>${onward}</p>`,
  );
}
