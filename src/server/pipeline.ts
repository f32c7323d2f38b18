// The request pipeline: health -> route -> authenticate -> authorize -> proxy. Each pass either answers the
// request or hands it on; only the registry API is forwarded, and only once authenticated. Where
// the registry signs users in itself (a scheme that forwards credentials), every path but the
// gateway's own goes on unchecked, so clients reach the token service beside the registry too.

import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AccessControl } from '../access/access-watch.js';
import { authorize } from '../access/authorize.js';
import { isAllowed } from '../access/decide.js';
import type { AuthRefusal, AuthRequest, AuthScheme } from '../auth/scheme.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { forwardCatalog } from '../proxy/catalog.js';
import { forward, type ForwardSettings } from '../proxy/forward.js';
import { canonicalPath } from '../registry/path.js';
import { sendJson, sendRegistryError } from '../registry/answers.js';
import { accessLogFields, createContext, hasUnreadBody, routeOf, type RequestContext } from '../registry/context.js';
import { failure } from '../registry/failure.js';
import { TOKEN_PATH } from '../registry/grant.js';
import { clientErrorOn } from './client-error.js';
import { answerLiveness, answerReadiness } from './health.js';
import { isUiPath } from '../web/handler.js';

export interface PipelineDeps {
  /** How requests sign in (the auth seam): the pipeline writes what it answers, whatever the scheme. */
  readonly auth: AuthScheme;
  readonly forwarding: ForwardSettings;
  readonly log: Logger;
  /** Strict-Transport-Security max-age in seconds; 0 for none. */
  readonly hstsMaxAge: number;
  /** True once shutdown began: responses then close their connection. */
  readonly draining: () => boolean;
  /** Counts for /metrics; null when metrics are off. */
  readonly metrics: GatewayMetrics | null;
  /** Who may pull, push and delete what; null or absent: every authenticated user may do everything. */
  readonly access?: AccessControl | null;
  /** Why the certificate served is not one clients trust yet (an ACME order open), or null; absent: never. */
  readonly certificateWaiting?: () => string | null;
  /** Answers `/token` (token mode): the gateway's own token service. */
  readonly tokenEndpoint?: ((ctx: RequestContext) => Promise<void>) | null;
  /** Answers `/` and `/ui/…`: the web UI; null or absent: off. */
  readonly web?: ((ctx: RequestContext) => Promise<void>) | null;
  /** Told of every registry and token request once its response closed: the record of events. */
  readonly events?: ((ctx: RequestContext) => void) | null;
}


export function isRegistryPath(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

export function createRequestHandler(deps: PipelineDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const fail = (ctx: RequestContext, err: unknown) => {
    // A fault of our own: answer if we still can, and never take the process down with it.
    ctx.failure = failure('internal', `internal error: ${(err as Error)?.message ?? String(err)}`);
    deps.log.error({ err, path: ctx.path }, 'request failed');
    sendRegistryError(ctx.res, 500, 'UNAVAILABLE', 'internal gateway error', { connection: 'close' });
  };
  return (req, res) => {
    const ctx = createContext(req, res);
    const { metrics } = deps;
    const logging = deps.log.isLevelEnabled('info');
    const { events } = deps;
    if (logging || metrics || events) {
      res.on('close', () => {
        if (!res.writableFinished) noteCutShort(ctx);
        metrics?.requestDone(ctx);
        if (logging) deps.log.info(accessLogFields(ctx), 'request');
        events?.(ctx);
      });
    }
    if (deps.hstsMaxAge > 0) res.setHeader('strict-transport-security', `max-age=${deps.hstsMaxAge}`);
    if (deps.draining()) res.setHeader('connection', 'close');
    try {
      route(ctx, deps)?.catch((err: unknown) => fail(ctx, err));
    } catch (err) {
      fail(ctx, err);
    }
  };
}

/** Why a response never finished, for its log line: a request the parser refused, or a closed connection. */
function noteCutShort(ctx: RequestContext): void {
  const refused = clientErrorOn(ctx.req.socket);
  if (refused && !ctx.res.headersSent) {
    ctx.res.statusCode = refused.status; // what the client was answered, written past the response object
    ctx.failure ??= failure('malformed-request', `malformed request: ${refused.reason}`);
  }
  // Whatever the gateway cuts itself (an upstream break, a timeout) says why before it cuts.
  ctx.failure ??= failure('connection-closed', 'connection closed before the end of the response');
}

// reg-name (without the sub-delims no registry host uses), IPv4, or a bracketed IPv6 literal; then an optional port.
const HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** At most one Host header, and a well-formed one (whether one is required depends on the HTTP version). */
export function hasOneValidHost(rawHeaders: readonly string[]): boolean {
  let seen = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length !== 4 || rawHeaders[i]!.toLowerCase() !== 'host') continue;
    if (++seen > 1 || !HOST.test(rawHeaders[i + 1]!)) return false;
  }
  return true;
}

/** Synchronous for the common case (credentials seen recently); a promise only when it must wait. */
function route(ctx: RequestContext, deps: PipelineDeps): Promise<void> | undefined {
  const { res } = ctx;
  if (!ctx.path.startsWith('/')) {
    sendJson(res, 400, JSON.stringify({ error: 'request target must be a path' }), { connection: 'close' });
  } else if (!canonicalize(ctx)) {
    return undefined;
  } else if (!hasOneValidHost(ctx.req.rawHeaders) || (ctx.req.headers.host === undefined && ctx.req.httpVersion !== '1.0')) {
    // RFC 9112 section 3.2: two Host headers, or one that is not a host[:port], get 400. Which one
    // the registry would believe is exactly the ambiguity a desync attack needs.
    sendJson(res, 400, JSON.stringify({ error: 'one Host header with a host name or address is required' }), { connection: 'close' });
  } else if (ctx.path === '/healthz') {
    answerLiveness(res);
  } else if (ctx.path === '/readyz') {
    // A registry that signs users in itself answers /v2/ with 401 when it works.
    return answerReadiness(res, deps.forwarding.upstream, { ownAuthExpected: deps.auth.forwardsCredentials }, deps.certificateWaiting);
  } else if (isRegistryPath(ctx.path)) {
    const signedIn = deps.auth.recall(authRequest(ctx));
    if (signedIn === undefined) return authenticateThenProxy(ctx, deps);
    ctx.user = signedIn.user;
    ctx.grant = signedIn.grant;
    proxy(ctx, deps);
  } else if (deps.tokenEndpoint && ctx.path === TOKEN_PATH) {
    return deps.tokenEndpoint(ctx);
  } else if (deps.web && isUiPath(ctx.path)) {
    return deps.web(ctx);
  } else if (isRegistryPath(ctx.path.toLowerCase())) {
    sendRegistryError(res, 400, 'UNSUPPORTED', 'registry API paths start with /v2/ in lower case', { connection: 'close' });
  } else if (deps.auth.forwardsCredentials) {
    return passOn(ctx, deps);
  } else {
    sendJson(res, 404, JSON.stringify({ error: 'not found' }));
  }
  return undefined;
}

/**
 * Routes on, and forwards, one spelling of the path: escapes of ordinary characters decoded,
 * anything the upstream could read differently refused (400). False when it answered.
 */
function canonicalize(ctx: RequestContext): boolean {
  const canonical = canonicalPath(ctx.path);
  if (!canonical.ok) {
    ctx.failure = failure('malformed-path', `malformed path: ${canonical.reason}`);
    sendRegistryError(ctx.res, 400, 'UNSUPPORTED', `malformed request path: ${canonical.reason}`, { connection: 'close' });
    return false;
  }
  if (canonical.path !== ctx.path) {
    ctx.path = canonical.path;
    // The query goes on byte for byte: the registry signs its upload state in it.
    ctx.req.url = canonical.path + (ctx.query === null ? '' : `?${ctx.query}`);
  }
  return true;
}

async function authenticateThenProxy(ctx: RequestContext, deps: PipelineDeps): Promise<void> {
  if (await authenticate(ctx, deps)) proxy(ctx, deps);
}

/**
 * A path outside the registry API, to the upstream's own sign-in (its token service, a login
 * page): not the registry's, so none of its checks apply (a token request may well be a form).
 */
async function passOn(ctx: RequestContext, deps: PipelineDeps): Promise<void> {
  if (!(await authenticate(ctx, deps))) return;
  const { req, res } = ctx;
  if (req.destroyed || res.destroyed || res.headersSent) return;
  if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
  ctx.forwarded = true;
  forward(req, res, ctx, deps.forwarding);
}

function proxy(ctx: RequestContext, deps: PipelineDeps): void {
  const { req, res } = ctx;
  // The client may have gone, or broken its framing (the server then answered 400 itself), while
  // its credentials were being checked: nothing of such a request may reach the upstream.
  if (req.destroyed || res.destroyed || res.headersSent) return;
  // Decided on the canonical path, the one the upstream then gets; before 100-continue, so a
  // refused upload never sends its body.
  const policy = deps.access?.policy() ?? null;
  const authorized = authorize(ctx, policy, deps.log);
  if (authorized === 'denied') return;
  if (typeof authorized === 'object') {
    // The token's own scheme says how to ask for a token with the scope the request needs.
    refuseSignIn(ctx, deps, deps.auth.insufficientScope!(authRequest(ctx), authorized.insufficient));
    return;
  }
  if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
  ctx.forwarded = true;
  if (authorized === 'catalog' && policy !== null) {
    const user = ctx.user!;
    forwardCatalog(req, res, ctx, deps.forwarding, (repository) => isAllowed(policy, user, 'pull', repository)).catch((err: unknown) => {
      deps.log.error({ err, path: ctx.path }, 'catalog request failed');
      res.destroy();
    });
  } else {
    forward(req, res, ctx, deps.forwarding);
  }
}

const authRequest = (ctx: RequestContext): AuthRequest => ({ headers: ctx.req.headers, remoteAddress: ctx.remoteAddress, access: () => routeOf(ctx) });

/** Asks the scheme who the request is; answers its refusal itself and returns false when it may not pass. */
async function authenticate(ctx: RequestContext, deps: PipelineDeps): Promise<boolean> {
  // A body we will not read must not be left on a connection we keep (judged before waiting).
  const closeIfBody = hasUnreadBody(ctx.req) ? { connection: 'close' } : {};
  const outcome = await deps.auth.authenticate(authRequest(ctx));
  if (outcome.kind === 'user') {
    ctx.user = outcome.user;
    ctx.grant = outcome.grant;
    return true;
  }
  if (outcome.kind === 'anonymous') return true;
  if (outcome.kind === 'unverified') {
    ctx.user = outcome.user;
    ctx.userVerified = false;
    return true;
  }
  ctx.user = outcome.user;
  refuseSignIn(ctx, deps, outcome, closeIfBody);
  return false;
}

/** Answers a scheme's refusal: its status, registry error and challenge. */
function refuseSignIn(ctx: RequestContext, deps: PipelineDeps, refusal: AuthRefusal, extra: OutgoingHttpHeaders = hasUnreadBody(ctx.req) ? { connection: 'close' } : {}): void {
  ctx.failure = failure('auth', refusal.detail);
  deps.metrics?.authFailed(refusal.reason);
  sendRegistryError(ctx.res, refusal.status, refusal.code, refusal.message, { ...refusal.headers, ...extra });
}
