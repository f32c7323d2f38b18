// The request pipeline: health -> route -> authenticate -> proxy. Each pass either answers the
// request or hands it on; only the registry API is forwarded, and only once authenticated.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.js';
import { isGatewayError } from '../errors.js';
import { forward, type ForwardSettings } from '../proxy/forward.js';
import { basicChallenge } from '../proxy/rewrite.js';
import { accessLogFields, createContext, hasUnreadBody, type RequestContext } from './context.js';
import { answerLiveness, answerReadiness } from './health.js';
import { sendJson, sendRegistryError } from './responses.js';

export interface PipelineDeps {
  readonly authenticator: Authenticator;
  readonly forwarding: ForwardSettings;
  readonly realm: string;
  readonly log: Logger;
  /** Strict-Transport-Security max-age in seconds; 0 for none. */
  readonly hstsMaxAge: number;
  /** True once shutdown began: responses then close their connection. */
  readonly draining: () => boolean;
}

export function isRegistryPath(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

export function createRequestHandler(deps: PipelineDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const fail = (ctx: RequestContext, err: unknown) => {
    // A fault of our own: answer if we still can, and never take the process down with it.
    ctx.failure = `internal error: ${(err as Error)?.message ?? String(err)}`;
    deps.log.error({ err, path: ctx.path }, 'request failed');
    sendRegistryError(ctx.res, 500, 'UNAVAILABLE', 'internal gateway error', { connection: 'close' });
  };
  return (req, res) => {
    const ctx = createContext(req, res);
    if (deps.log.isLevelEnabled('info')) res.on('close', () => deps.log.info(accessLogFields(ctx), 'request'));
    if (deps.hstsMaxAge > 0) res.setHeader('strict-transport-security', `max-age=${deps.hstsMaxAge}`);
    if (deps.draining()) res.setHeader('connection', 'close');
    try {
      route(ctx, deps)?.catch((err: unknown) => fail(ctx, err));
    } catch (err) {
      fail(ctx, err);
    }
  };
}

/** Synchronous for the common case (credentials seen recently); a promise only when it must wait. */
function route(ctx: RequestContext, deps: PipelineDeps): Promise<void> | undefined {
  const { res } = ctx;
  if (!ctx.path.startsWith('/')) {
    sendJson(res, 400, JSON.stringify({ error: 'request target must be a path' }), { connection: 'close' });
  } else if (ctx.path === '/healthz') {
    answerLiveness(res);
  } else if (ctx.path === '/readyz') {
    return answerReadiness(res, deps.forwarding.upstream);
  } else if (isRegistryPath(ctx.path)) {
    const user = deps.authenticator.recall(ctx.req.headers.authorization);
    if (user === undefined) return authenticateThenProxy(ctx, deps);
    ctx.user = user;
    proxy(ctx, deps);
  } else {
    sendJson(res, 404, JSON.stringify({ error: 'not found' }));
  }
  return undefined;
}

async function authenticateThenProxy(ctx: RequestContext, deps: PipelineDeps): Promise<void> {
  if (await authenticate(ctx, deps)) proxy(ctx, deps);
}

function proxy(ctx: RequestContext, deps: PipelineDeps): void {
  const { req, res } = ctx;
  if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
  forward(req, res, ctx, deps.forwarding);
}

/** Answers 401 (or 503 when verification is overloaded) itself and returns false when the request may not pass. */
async function authenticate(ctx: RequestContext, deps: PipelineDeps): Promise<boolean> {
  const { req, res } = ctx;
  // A body we will not read must not be left on a connection we keep.
  const closeIfBody = hasUnreadBody(req) ? { connection: 'close' } : {};
  try {
    const result = await deps.authenticator.authenticate(req.headers.authorization);
    if (result.ok) {
      ctx.user = result.user;
      return true;
    }
    ctx.user = result.user;
    ctx.failure = `authentication ${result.reason}`;
  } catch (err) {
    if (!isGatewayError(err, 'AUTH_BUSY') && !isGatewayError(err, 'AUTH_WORKER_FAILED')) throw err;
    ctx.failure = err.code === 'AUTH_BUSY' ? 'authentication overloaded' : 'password verification failed';
    sendRegistryError(res, 503, 'UNAVAILABLE', 'too many logins at once; retry shortly', { 'retry-after': '1', ...closeIfBody });
    return false;
  }
  sendRegistryError(res, 401, 'UNAUTHORIZED', 'authentication required', {
    'www-authenticate': basicChallenge(deps.realm),
    ...closeIfBody,
  });
  return false;
}
