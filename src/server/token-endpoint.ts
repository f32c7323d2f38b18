// The token service of `--auth token`, at /token on the gateway's own origin: what docker,
// podman, skopeo and containerd ask after the registry's Bearer challenge. It signs in the
// htpasswd users exactly as /v2/ does (the Basic scheme: same cache, same throttle), or nobody
// (the @anonymous principal), and grants what was asked for as far as the access file allows.
//
//   GET  /token?service=..&scope=..&offline_token=true   Basic credentials, or none
//   POST /token  grant_type=password (username, password) | grant_type=refresh_token (refresh_token)
//
// Answers: {token, access_token, expires_in, issued_at[, refresh_token]}; a refusal is the
// registry's error body (401 for credentials, 400 for a request that is not one).

import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { AccessControl } from '../access/access-watch.js';
import { grantFor } from '../access/decide.js';
import type { AuthRefusal, AuthScheme } from '../auth/scheme.js';
import type { Tokens } from '../auth/tokens.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { sendJson, sendRegistryError } from '../registry/answers.js';
import type { RequestContext } from '../registry/context.js';
import { failure } from '../registry/failure.js';
import { ANONYMOUS, parseScopes } from '../registry/grant.js';
import { FormError, readUrlencodedForm } from '../web/form.js';

export interface TokenEndpointOptions {
  readonly tokens: Tokens;
  /** Signs in Basic credentials and form passwords, with the throttle of /v2/. */
  readonly basic: AuthScheme;
  readonly service: string;
  readonly access: AccessControl | null;
  readonly log: Logger;
  readonly metrics: GatewayMetrics | null;
}

// A token request is a few hundred bytes; a form much larger than this is not one.
const MAX_FORM_BYTES = 16 * 1024;
const FORM_TIMEOUT_MS = 10_000;

/** Why a request cannot get a token: answered as the registry's error. */
class TokenRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly refusal: AuthRefusal | null = null,
  ) {
    super(message);
  }
}

interface TokenRequest {
  readonly params: URLSearchParams;
  /** Who asks: a user, or ANONYMOUS. */
  readonly user: string;
  /** Whether the answer carries a refresh token. */
  readonly offline: boolean;
}

export function createTokenEndpoint(options: TokenEndpointOptions): (ctx: RequestContext) => Promise<void> {
  const { tokens, basic, service } = options;

  /** A Basic sign-in (from the header, or a form's username and password): the user, or the refusal thrown. */
  const signIn = async (ctx: RequestContext, authorization: string): Promise<string> => {
    const outcome = await basic.authenticate({ headers: { ...ctx.req.headers, authorization }, remoteAddress: ctx.remoteAddress });
    if (outcome.kind === 'user') return outcome.user;
    if (outcome.kind === 'refused') throw new TokenRequestError(outcome.status, outcome.message, outcome);
    throw new TokenRequestError(401, 'authentication required');
  };

  const fromQuery = async (ctx: RequestContext): Promise<TokenRequest> => {
    const params = new URLSearchParams(ctx.query ?? '');
    const header = ctx.req.headers.authorization;
    if (header === undefined || header === '') return { params, user: ANONYMOUS, offline: false };
    if (!/^basic /i.test(header.trimStart())) throw new TokenRequestError(400, 'the token service takes Basic credentials, a password grant or a refresh token');
    return { params, user: await signIn(ctx, header), offline: params.get('offline_token') === 'true' };
  };

  const fromForm = async (ctx: RequestContext): Promise<TokenRequest> => {
    if (ctx.req.headers.expect?.toLowerCase() === '100-continue' && !ctx.res.headersSent) ctx.res.writeContinue();
    const params = await readForm(ctx.req);
    switch (params.get('grant_type')) {
      case 'password': {
        const username = params.get('username') ?? '';
        const password = params.get('password') ?? '';
        if (username === '' || username.includes(':')) throw new TokenRequestError(400, 'a password grant needs a username without ":"');
        const user = await signIn(ctx, `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`);
        return { params, user, offline: true };
      }
      case 'refresh_token': {
        const verified = await tokens.verifyRefresh(params.get('refresh_token') ?? '');
        if (!verified.ok) throw new TokenRequestError(401, 'refresh token not accepted; log in again', refused(`refresh token refused: ${verified.reason}`));
        // Not rotated: docker keeps the refresh token it got at login (moby#39718).
        return { params, user: verified.value, offline: false };
      }
      default:
        throw new TokenRequestError(400, 'grant_type must be password or refresh_token');
    }
  };

  const answer = async (ctx: RequestContext): Promise<void> => {
    const method = ctx.req.method;
    if (method !== 'GET' && method !== 'POST') {
      sendRegistryError(ctx.res, 405, 'UNSUPPORTED', 'the token service answers GET and POST', { allow: 'GET, POST' });
      return;
    }
    const request = method === 'GET' ? await fromQuery(ctx) : await fromForm(ctx);
    ctx.user = request.user;
    const asked = request.params.get('service');
    if (asked !== null && asked !== service) throw new TokenRequestError(400, `this token service is ${JSON.stringify(service)}, not ${JSON.stringify(asked)}`);
    const scopes = parseScopes(request.params.getAll('scope'));
    if (!scopes.ok) throw new TokenRequestError(400, `invalid scope: ${scopes.reason}`);
    const grant = grantFor(options.access?.policy() ?? null, request.user, scopes.requested);
    const access = await tokens.issueAccess(request.user, grant);
    const refresh = request.offline && request.user !== ANONYMOUS ? await tokens.issueRefresh(request.user) : null;
    const body = {
      token: access.token,
      access_token: access.token,
      expires_in: access.expiresIn,
      issued_at: access.issuedAt.toISOString(),
      ...(refresh === null ? {} : { refresh_token: refresh.token }),
    };
    sendJson(ctx.res, 200, JSON.stringify(body), { 'cache-control': 'no-store', pragma: 'no-cache' });
  };

  return async (ctx) => {
    try {
      await answer(ctx);
    } catch (err) {
      if (!(err instanceof TokenRequestError)) throw err;
      const refusal = err.refusal;
      ctx.user ??= refusal?.user ?? null;
      ctx.failure = failure('auth', refusal?.detail ?? `token request refused: ${err.message}`);
      if (refusal !== null) options.metrics?.authFailed(refusal.reason);
      const code = refusal?.code ?? (err.status === 401 ? 'UNAUTHORIZED' : 'UNSUPPORTED');
      if (ctx.res.destroyed || ctx.res.headersSent) return;
      // The form may be unread (refused before reading, or too large): not left on a kept connection.
      sendRegistryError(ctx.res, err.status, code, err.message, { ...(refusal?.headers ?? {}), ...(ctx.req.complete ? {} : { connection: 'close' }) });
    }
  };
}

function refused(detail: string): AuthRefusal {
  return { kind: 'refused', status: 401, code: 'UNAUTHORIZED', message: 'refresh token not accepted; log in again', headers: {}, user: null, reason: 'mismatch', detail };
}

/** The urlencoded form of a POST, bounded in size and time. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  try {
    return await readUrlencodedForm(req, { maxBytes: MAX_FORM_BYTES, timeoutMs: FORM_TIMEOUT_MS, what: 'a token request form' });
  } catch (err) {
    if (err instanceof FormError) throw new TokenRequestError(err.status, err.message);
    throw err;
  }
}
