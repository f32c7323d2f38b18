// The web UI at `/` and under `/ui/`: sign-in with the htpasswd users, the repositories a user may
// pull, each one's tags, and deleting where the user may delete. Pages are rendered on the server
// (web/pages.ts): they work without script, and no registry data ever reaches the browser other
// than as escaped text. Everything is read straight from the registry behind the gateway, never
// with the user's credentials: what a user sees is decided here, by the same access rules as /v2/.
//
//   GET  /                         the repositories (?q= search, ?last= next page)
//   GET  /ui/login   POST /ui/login    sign-in (POST: username, password, csrf, next)
//   POST /ui/logout                sign-out
//   GET  /ui/repository?name=      its tags (?last= next page)
//   GET  /ui/delete?name=&reference=   the confirmation; POST /ui/delete does it
//   GET  /ui/assets/…              the stylesheet and the script

import type { OutgoingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { GatewayEvent } from '../events/event.js';
import { uiEvent } from '../events/capture.js';
import type { Upstream } from '../proxy/upstream.js';
import { hasUnreadBody, type RequestContext } from '../registry/context.js';
import { failure } from '../registry/failure.js';
import { ASSETS } from './assets.js';
import { FormError, readUrlencodedForm } from './form.js';
import { confirmDeletePage, loginPage, messagePage, pageHeaders, repositoriesPage, repositoryPage } from './pages.js';
import { deleteReference, describeTags, isDigest, listRepositories, listTags, resolveDigest, tagsPointingAt, UpstreamViewError } from './registry-view.js';
import type { Session, Sessions } from './session.js';
import type { TagView } from './view.js';

/** What a sign-in with a username and password came to. */
export type WebSignIn =
  | { readonly ok: true; readonly user: string }
  | { readonly ok: false; readonly status: number; readonly message: string; readonly retryAfterS: number | null; readonly user: string | null; readonly detail: string };

export interface WebDeps {
  readonly sessions: Sessions;
  /** Checks a username and password exactly as /v2/ does: the same cache, the same throttle. */
  signIn(username: string, password: string, remoteAddress: string): Promise<WebSignIn>;
  /** Whether the access rules let the user do this (no access file: everything). */
  may(user: string, action: 'pull' | 'delete', repository: string): boolean;
  readonly upstream: Upstream;
  /** The gateway's record: who pushed what, and where this UI's deletes and refusals go. */
  readonly record: {
    lastPush(repository: string, tag: string | null, digest: string | null): Promise<GatewayEvent | null>;
    add(event: GatewayEvent): void;
  };
  /** A repository changed behind the API (a delete here): resolves once no process serves a copy of its manifests any more. */
  changed(repository: string): Promise<void>;
  /** The origin clients use (--public-url), or null: the request's own Host. */
  readonly publicUrl: URL | null;
  readonly log: Logger;
}

export const UI_PREFIX = '/ui/';
const REPOSITORIES_PER_PAGE = 50;
const TAGS_PER_PAGE = 20;
const MAX_FORM_BYTES = 8 * 1024;
const FORM_TIMEOUT_MS = 10_000;

/** Whether the path is the UI's. */
export function isUiPath(path: string): boolean {
  return path === '/' || path.startsWith(UI_PREFIX);
}

export function createWebHandler(deps: WebDeps): (ctx: RequestContext) => Promise<void> {
  return async (ctx) => {
    const asset = ASSETS.get(ctx.path);
    if (asset !== undefined) return sendAsset(ctx, asset);
    const method = ctx.req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') return send(ctx, 405, messagePage(blank('Not allowed', 'This page answers GET and POST.', 405)), { allow: 'GET, HEAD, POST' });
    const session = deps.sessions.read(ctx.req.headers.cookie);
    if (session !== null) ctx.user = session.user;
    const query = new URLSearchParams(ctx.query ?? '');
    // Before anything else, with or without a session: a form another site made this browser send.
    if (method === 'POST' && !sameOrigin(ctx, deps)) return refuseForgery(ctx, session, 'a form posted from another site');
    try {
      if (ctx.path === '/ui/login') return method === 'POST' ? await logIn(ctx, deps) : showLogin(ctx, deps, session, query.get('next'));
      if (session === null) return redirect(ctx, `/ui/login?next=${encodeURIComponent(pathWithQuery(ctx))}`);
      if (method === 'POST') {
        const form = await readPost(ctx, deps, session);
        if (form === null) return;
        if (ctx.path === '/ui/logout') return redirect(ctx, '/ui/login', { 'set-cookie': deps.sessions.cleared });
        if (ctx.path === '/ui/delete') return await deleteAndReturn(ctx, deps, session, form);
        return send(ctx, 404, messagePage(page(session, 'Not found', 'There is no such page.', 404)));
      }
      if (ctx.path === '/') return await showRepositories(ctx, deps, session, query);
      if (ctx.path === '/ui/repository') return await showRepository(ctx, deps, session, query);
      if (ctx.path === '/ui/delete') return await confirmDelete(ctx, deps, session, query);
      return send(ctx, 404, messagePage(page(session, 'Not found', 'There is no such page.', 404)));
    } catch (err) {
      if (!(err instanceof UpstreamViewError)) throw err;
      ctx.failure = failure('upstream-unavailable', `web UI: ${err.message}`);
      return send(ctx, err.status, messagePage(page(session, 'The registry did not answer', `${err.message}. Try again in a moment.`, err.status)));
    }
  };
}

// ---- sign-in and sign-out ----

function showLogin(ctx: RequestContext, deps: WebDeps, session: Session | null, next: string | null): void {
  if (session !== null) return redirect(ctx, safeNext(next));
  const form = deps.sessions.loginForm();
  send(ctx, 200, loginPage({ error: null, username: '', retryAfterS: null, next: safeNext(next), csrf: form.csrf }), { 'set-cookie': form.cookie });
}

async function logIn(ctx: RequestContext, deps: WebDeps): Promise<void> {
  const form = await readForm(ctx);
  if (form === null) return;
  const username = form.get('username') ?? '';
  const next = safeNext(form.get('next'));
  const again = (status: number, error: string | null, retryAfterS: number | null) => {
    const fresh = deps.sessions.loginForm();
    send(ctx, status, loginPage({ error, username, retryAfterS, next, csrf: fresh.csrf }), { 'set-cookie': fresh.cookie, ...(retryAfterS === null ? {} : { 'retry-after': String(retryAfterS) }) });
  };
  if (!deps.sessions.loginFormValid(ctx.req.headers.cookie, form.get('csrf') ?? '')) return again(403, 'This sign-in form expired. Please sign in again.', null);
  if (username === '' || username.includes(':')) return again(400, 'Enter your user name and password.', null);
  const outcome = await deps.signIn(username, form.get('password') ?? '', ctx.remoteAddress);
  if (!outcome.ok) {
    ctx.user = outcome.user;
    ctx.failure = failure('auth', `web UI sign-in: ${outcome.detail}`);
    if (outcome.status === 401) deps.record.add(uiEvent(ctx, { action: 'denied', reason: `web UI sign-in: ${outcome.detail}` }));
    // The form says how long to wait itself, from retryAfterS.
    return again(outcome.status, outcome.status === 429 ? null : outcome.message, outcome.retryAfterS);
  }
  ctx.user = outcome.user;
  const started = deps.sessions.start(outcome.user);
  redirect(ctx, next, { 'set-cookie': [started.cookie, deps.sessions.loginCleared] });
}


/** A signed-in POST (its Origin already checked): its form, once its CSRF token holds; null when it was answered. */
async function readPost(ctx: RequestContext, deps: WebDeps, session: Session): Promise<URLSearchParams | null> {
  const form = await readForm(ctx);
  if (form === null) return null;
  if (!deps.sessions.tokenMatches(session.csrf, form.get('csrf') ?? '')) {
    refuseForgery(ctx, session, 'a form without this session\'s CSRF token');
    return null;
  }
  return form;
}

function refuseForgery(ctx: RequestContext, session: Session | null, why: string): void {
  ctx.failure = failure('auth', `web UI: refused ${why}`);
  send(ctx, 403, messagePage(page(session, 'Refused', 'This request did not come from this site\'s own pages, so it was refused. Reload the page and try again.', 403)));
}

/** The Origin (or, where a browser sends none, Sec-Fetch-Site) says the form is this site's own. */
function sameOrigin(ctx: RequestContext, deps: WebDeps): boolean {
  const origin = ctx.req.headers.origin;
  const site = ctx.req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  if (origin === undefined) return site === 'same-origin';
  const own = new Set([`https://${(ctx.req.headers.host ?? '').toLowerCase()}`]);
  if (deps.publicUrl !== null) own.add(deps.publicUrl.origin.toLowerCase());
  return own.has(origin.toLowerCase());
}

async function readForm(ctx: RequestContext): Promise<URLSearchParams | null> {
  try {
    return await readUrlencodedForm(ctx.req, { maxBytes: MAX_FORM_BYTES, timeoutMs: FORM_TIMEOUT_MS, what: 'a form' });
  } catch (err) {
    if (!(err instanceof FormError)) throw err;
    ctx.failure = failure('malformed-request', `web UI: ${err.message}`);
    send(ctx, err.status, messagePage(blank('Not a form', `${err.message}.`, err.status)));
    return null;
  }
}

/** Where to go after sign-in: a path of this UI only, never another site. */
function safeNext(next: string | null): string {
  if (next === null || !next.startsWith('/') || next.startsWith('//') || next.includes('\\')) return '/';
  return next === '/' || next.startsWith('/?') || next.startsWith(UI_PREFIX) ? next : '/';
}

// ---- pages ----

async function showRepositories(ctx: RequestContext, deps: WebDeps, session: Session, query: URLSearchParams): Promise<void> {
  const q = (query.get('q') ?? '').slice(0, 256);
  const repositories = await listRepositories(deps.upstream, {
    allowed: (name) => deps.may(session.user, 'pull', name),
    query: q,
    after: query.get('last'),
    limit: REPOSITORIES_PER_PAGE,
  });
  send(ctx, 200, repositoriesPage({ user: session.user, csrf: session.csrf, repositories, query: q, host: pullHost(ctx, deps) }));
}

async function showRepository(ctx: RequestContext, deps: WebDeps, session: Session, query: URLSearchParams): Promise<void> {
  const repository = query.get('name') ?? '';
  // Not allowed and not there look the same: a name one may not pull is not confirmed to exist.
  if (!deps.may(session.user, 'pull', repository)) return notFound(ctx, session, repository);
  const names = await listTags(deps.upstream, repository, { after: query.get('last'), limit: TAGS_PER_PAGE });
  if (names === null) return notFound(ctx, session, repository);
  const described = await describeTags(deps.upstream, repository, names.items);
  // Asked all at once: with --workers each question is a round trip to the process that keeps the record.
  const tags: TagView[] = await Promise.all(
    described
      .filter((tag) => tag !== null)
      .map(async (tag) => {
        const pushed = await deps.record.lastPush(repository, tag.tag, tag.digest);
        return { ...tag, pushedBy: pushed?.user ?? null, pushedAt: pushed?.timestamp ?? null };
      }),
  );
  const message = query.get('deleted');
  send(ctx, 200, repositoryPage({
    user: session.user,
    csrf: session.csrf,
    repository,
    tags: { items: tags, next: names.next },
    host: pullHost(ctx, deps),
    canDelete: deps.may(session.user, 'delete', repository),
    message: message === null ? null : `Deleted ${message.slice(0, 300)}.`,
  }));
}

async function confirmDelete(ctx: RequestContext, deps: WebDeps, session: Session, query: URLSearchParams): Promise<void> {
  const repository = query.get('name') ?? '';
  const reference = query.get('reference') ?? '';
  if (!deps.may(session.user, 'pull', repository)) return notFound(ctx, session, repository);
  if (!deps.may(session.user, 'delete', repository)) return notAllowed(ctx, session, repository);
  const digest = await resolveDigest(deps.upstream, repository, reference);
  if (digest === null) return send(ctx, 404, messagePage(page(session, 'Not found', `${repository}:${reference} does not exist (any more).`, 404)));
  const pointing = await tagsPointingAt(deps.upstream, repository, digest);
  send(ctx, 200, confirmDeletePage({ user: session.user, csrf: session.csrf, repository, reference, digest, otherTags: pointing.filter((t) => t !== reference) }));
}

async function deleteAndReturn(ctx: RequestContext, deps: WebDeps, session: Session, form: URLSearchParams): Promise<void> {
  const repository = form.get('name') ?? '';
  const reference = form.get('reference') ?? '';
  const what = form.get('what') === 'manifest' ? 'manifest' : 'tag';
  if (!deps.may(session.user, 'pull', repository)) return notFound(ctx, session, repository);
  if (!deps.may(session.user, 'delete', repository)) {
    deps.record.add(uiEvent(ctx, { action: 'denied', repository, tag: reference, reason: 'web UI: the access rules do not grant delete' }));
    return notAllowed(ctx, session, repository);
  }
  // The manifest the confirmation showed, even if the tag has moved since; else what the tag names now.
  const confirmed = form.get('digest');
  const digest = what === 'manifest' && confirmed !== null && isDigest(confirmed) ? confirmed : await resolveDigest(deps.upstream, repository, reference);
  if (digest === null) return send(ctx, 404, messagePage(page(session, 'Not found', `${repository}:${reference} does not exist (any more).`, 404)));
  const target = what === 'manifest' ? digest : reference;
  const deleted = await deleteReference(deps.upstream, repository, target);
  if (!deleted.ok) {
    deps.log.warn({ user: session.user, repository, reference: target, status: deleted.status }, `web UI delete refused by the registry: ${deleted.message}`);
    return send(ctx, deleted.status >= 500 ? 502 : 409, messagePage(page(session, 'Not deleted', deleted.message, deleted.status >= 500 ? 502 : 409)));
  }
  // As for a delete through /v2/: the next pull, from any process, must not get a copy of what is gone.
  await deps.changed(repository);
  deps.record.add(uiEvent(ctx, { action: 'delete', repository, tag: what === 'tag' ? reference : null, digest }));
  deps.log.info({ user: session.user, repository, reference: target }, 'deleted through the web UI');
  const label = what === 'manifest' ? `${repository}@${digest}` : `${repository}:${reference}`;
  redirect(ctx, `/ui/repository?name=${encodeURIComponent(repository)}&deleted=${encodeURIComponent(label)}`);
}

function notFound(ctx: RequestContext, session: Session, repository: string): void {
  send(ctx, 404, messagePage(page(session, 'Not found', `There is no repository ${repository} that you may pull.`, 404)));
}

function notAllowed(ctx: RequestContext, session: Session, repository: string): void {
  ctx.failure = failure('denied', `web UI: delete in ${repository} not granted`);
  send(ctx, 403, messagePage(page(session, 'Not allowed', `You may not delete in ${repository}.`, 403)));
}

/** Host (and port) of `docker pull` lines: the public URL's, else what the browser used. */
function pullHost(ctx: RequestContext, deps: WebDeps): string {
  if (deps.publicUrl !== null) return deps.publicUrl.port === '' || deps.publicUrl.port === '443' ? deps.publicUrl.hostname : deps.publicUrl.host;
  const host = ctx.req.headers.host ?? 'localhost';
  return host.endsWith(':443') ? host.slice(0, -4) : host;
}

function pathWithQuery(ctx: RequestContext): string {
  return ctx.query === null ? ctx.path : `${ctx.path}?${ctx.query}`;
}

const blank = (title: string, message: string, status: number) => ({ user: null, csrf: null, title, message, status });
const page = (session: Session | null, title: string, message: string, status: number) => ({ user: session?.user ?? null, csrf: session?.csrf ?? null, title, message, status });

// ---- writing answers ----

function send(ctx: RequestContext, status: number, body: string, extra: OutgoingHttpHeaders = {}): void {
  const { res } = ctx;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const buffer = Buffer.from(body, 'utf8');
  // A body left unread (a refused form) must not stay on a connection that is kept.
  const close = hasUnreadBody(ctx.req) ? { connection: 'close' } : {};
  for (const [name, value] of Object.entries({ ...pageHeaders, ...extra, ...close, 'content-length': buffer.length })) if (value !== undefined) res.setHeader(name, value);
  res.writeHead(status);
  res.end(ctx.req.method === 'HEAD' ? undefined : buffer);
}

function redirect(ctx: RequestContext, location: string, extra: OutgoingHttpHeaders = {}): void {
  send(ctx, 303, '', { ...extra, location });
}

function sendAsset(ctx: RequestContext, asset: { body: Buffer; type: string; etag: string }): void {
  const { res } = ctx;
  const headers: OutgoingHttpHeaders = {
    'content-type': asset.type,
    'x-content-type-options': 'nosniff',
    // Named by their content: a new version is a new name.
    'cache-control': 'public, max-age=31536000, immutable',
    etag: asset.etag,
  };
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value!);
  if (ctx.req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304);
    res.end();
    return;
  }
  res.setHeader('content-length', asset.body.length);
  res.writeHead(200);
  res.end(ctx.req.method === 'HEAD' ? undefined : asset.body);
}
