// Which requests become events, read from a request's context once its response has closed: a
// manifest pushed or deleted through the registry, or a request the gateway refused. Everything
// else (pulls, blobs, uploads, pings, errors of the upstream) is the access log's business only.

import { randomBytes } from 'node:crypto';
import { routeOf, type RequestContext } from '../registry/context.js';
import { TOKEN_PATH } from '../registry/grant.js';
import type { RequestAccess } from '../registry/routes.js';
import type { EventAction, GatewayEvent } from './event.js';

/** A new event id: 32 hex characters. */
export function newEventId(): string {
  return randomBytes(16).toString('hex');
}

/** The event a closed /v2/ or token request makes, or null when it makes none (most requests: kept cheap). */
export function eventFromRequest(ctx: RequestContext, now?: Date): GatewayEvent | null {
  if (ctx.path === TOKEN_PATH) return refusedTokenRequest(ctx) ? deniedEvent(ctx, null, now ?? new Date()) : null;
  if (!isRegistryApiPath(ctx.path)) return null;
  const route = routeOf(ctx);
  const status = ctx.res.statusCode;
  const manifest = manifestTarget(route);
  if (manifest !== null && ctx.forwarded) {
    if (ctx.method === 'PUT' && status === 201) return manifestEvent(ctx, 'push', manifest, now ?? new Date());
    if (ctx.method === 'DELETE' && status === 202) return manifestEvent(ctx, 'delete', manifest, now ?? new Date());
  }
  if (!isRefusal(ctx)) return null;
  return deniedEvent(ctx, route.kind === 'repository' ? route.repository : null, now ?? new Date());
}

/**
 * A token request whose credentials (Basic, a password grant's form, a refresh token) were checked
 * and refused: `docker login` with a wrong password in token mode.
 */
function refusedTokenRequest(ctx: RequestContext): boolean {
  return ctx.res.statusCode === 401 && ctx.failure?.kind === 'auth';
}

function deniedEvent(ctx: RequestContext, repository: string | null, now: Date): GatewayEvent {
  return {
    ...common(ctx, now),
    action: 'denied',
    repository,
    tag: null,
    digest: null,
    mediaType: null,
    size: null,
    status: ctx.res.statusCode,
    reason: ctx.failure?.detail ?? null,
  };
}

/** What the web UI says of a change or refusal it made; the rest comes from its request's context. */
export interface UiEventFields {
  readonly action: EventAction;
  readonly repository?: string | null;
  readonly tag?: string | null;
  readonly digest?: string | null;
  readonly reason?: string | null;
  /** What the user was (or is about to be) answered; see uiEvent for the default. */
  readonly status?: number;
}

/**
 * An event of the web UI (a delete, or a refused sign-in or delete). It is made before the page
 * is answered, so the status is not read from the response: by default 202 for a delete (what the
 * registry answered it), 401 for a refusal of a sign-in (ctx.failure of kind 'auth'), else 403.
 */
export function uiEvent(ctx: RequestContext, fields: UiEventFields, now: Date = new Date()): GatewayEvent {
  const refusedSignIn = ctx.failure?.kind === 'auth';
  return {
    ...common(ctx, now),
    via: 'ui',
    action: fields.action,
    repository: fields.repository ?? null,
    tag: fields.tag ?? null,
    digest: fields.digest ?? null,
    mediaType: null,
    size: null,
    status: fields.status ?? (fields.action === 'delete' ? 202 : refusedSignIn ? 401 : 403),
    reason: fields.action === 'denied' ? (fields.reason ?? ctx.failure?.detail ?? null) : null,
  };
}

function isRegistryApiPath(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

interface ManifestTarget {
  readonly repository: string;
  /** A tag or a digest. */
  readonly reference: string;
}

function manifestTarget(route: RequestAccess): ManifestTarget | null {
  if (route.kind !== 'repository' || route.route !== 'manifest' || route.reference === null) return null;
  return { repository: route.repository, reference: route.reference };
}

/**
 * A refusal worth recording: access denied (403), or credentials that were checked and refused
 * (401). A 401 to a request without credentials is the challenge every docker client gets before
 * it signs in, not a refusal; a 429 (throttled) was never checked at all.
 */
function isRefusal(ctx: RequestContext): boolean {
  const status = ctx.res.statusCode;
  if (status === 403) return true;
  return status === 401 && ctx.failure?.kind === 'auth' && ctx.req.headers.authorization !== undefined;
}

/** Digests are `algorithm:hex`; tags cannot hold a colon. */
function isDigest(ref: string): boolean {
  return ref.includes(':');
}

function manifestEvent(ctx: RequestContext, action: EventAction, target: ManifestTarget, now: Date): GatewayEvent {
  const byDigest = isDigest(target.reference);
  const pushed = action === 'push';
  return {
    ...common(ctx, now),
    action,
    repository: target.repository,
    tag: byDigest ? null : target.reference,
    digest: byDigest ? target.reference : responseDigest(ctx),
    mediaType: pushed ? mediaTypeOf(ctx.req.headers['content-type']) : null,
    size: pushed ? requestSize(ctx) : null,
    status: ctx.res.statusCode,
    reason: null,
  };
}

function common(ctx: RequestContext, now: Date): Pick<GatewayEvent, 'id' | 'timestamp' | 'user' | 'address' | 'method' | 'path' | 'via'> {
  return {
    id: newEventId(),
    timestamp: now.toISOString(),
    user: ctx.user,
    address: ctx.remoteAddress,
    method: ctx.method,
    path: ctx.path,
    via: 'registry',
  };
}

function responseDigest(ctx: RequestContext): string | null {
  const value = ctx.res.getHeader('docker-content-digest');
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first !== '' ? first : null;
}

/** The media type without its parameters (`; charset=…`). */
function mediaTypeOf(contentType: string | undefined): string | null {
  const type = contentType?.split(';')[0]?.trim();
  return type ? type : null;
}

/** The manifest's size: the declared Content-Length, else what was counted coming in. */
function requestSize(ctx: RequestContext): number {
  const declared = ctx.req.headers['content-length'];
  return declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : ctx.bytesIn;
}
