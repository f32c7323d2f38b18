// Bearer tokens (`--auth token`), as a scheme of the auth seam: the Docker token flow, with the
// gateway as both the token service (server/token-endpoint.ts) and the token checker. A request
// without credentials is challenged with `Bearer realm=ORIGIN/token,service=..,scope=..`; a
// token is checked by signature and claims once, then remembered until it expires, so the
// requests of a push or pull cost a map lookup. Basic credentials sent unasked (curl -u, scripts)
// still sign in, through the Basic scheme with its cache and throttle.

import { bearerToken } from './bearer.js';
import type { AuthOutcome, AuthRefusal, AuthRequest, AuthScheme, SignedIn } from './scheme.js';
import { requestScope, TOKEN_PATH } from '../registry/grant.js';
import { MAX_TOKEN_CHARS, type AccessTokenClaims, type Tokens } from './tokens.js';

export interface TokenSchemeOptions {
  readonly tokens: Tokens;
  /** Signs in Basic credentials sent without a token. */
  readonly basic: AuthScheme;
  /** The `service` of the challenge, which the token service checks tokens against. */
  readonly service: string;
  /** `--public-url`'s origin; null: the origin the client used (https and its Host). */
  readonly publicOrigin: string | null;
  /** Verified tokens remembered; default 4096. */
  readonly cacheEntries?: number;
}

/** The token service's URL for a request. */
export function realmFor(publicOrigin: string | null, host: string | undefined): string {
  return `${publicOrigin ?? `https://${host ?? 'localhost'}`}${TOKEN_PATH}`;
}

export function createTokenScheme(options: TokenSchemeOptions): AuthScheme {
  const { tokens, basic, service, publicOrigin } = options;
  const maxEntries = options.cacheEntries ?? 4096;
  // Verified tokens by their text, in insertion order (the oldest is dropped first).
  const verified = new Map<string, AccessTokenClaims>();

  const challenge = (request: AuthRequest, extra: { scope?: string | null; error?: string }): string => {
    const scope = extra.scope === undefined ? scopeOf(request) : extra.scope;
    return [
      `Bearer realm="${realmFor(publicOrigin, request.headers.host)}"`,
      `service="${service}"`,
      ...(scope === null ? [] : [`scope="${scope}"`]),
      ...(extra.error === undefined ? [] : [`error="${extra.error}"`]),
    ].join(',');
  };
  const unauthorized = (request: AuthRequest, reason: AuthRefusal['reason'], detail: string, user: string | null, error?: string): AuthRefusal => ({
    kind: 'refused',
    status: 401,
    code: 'UNAUTHORIZED',
    message: 'authentication required',
    headers: { 'www-authenticate': challenge(request, error === undefined ? {} : { error }) },
    user,
    reason,
    detail,
  });

  const remembered = (token: string): SignedIn | undefined => {
    const claims = verified.get(token);
    if (claims === undefined) return undefined;
    // Expired, or its user's entry changed (a new password, a removed user): checked again in full.
    if (Date.now() >= claims.expiresAt || (claims.binding !== null && tokens.bindingOf(claims.user) !== claims.binding)) {
      verified.delete(token);
      return undefined;
    }
    return { kind: 'user', user: claims.user, grant: claims.grant };
  };

  return {
    challenge: `Bearer realm="${realmFor(publicOrigin, undefined)}",service="${service}"`,
    forwardsCredentials: false,
    recall(request) {
      const token = bearerToken(request.headers.authorization, MAX_TOKEN_CHARS + 16);
      return token === null ? basic.recall(request) : remembered(token);
    },
    async authenticate(request): Promise<AuthOutcome> {
      const header = request.headers.authorization;
      if (header === undefined || header === '') return unauthorized(request, 'missing', 'no credentials', null);
      const token = bearerToken(header, MAX_TOKEN_CHARS + 16);
      if (token === null) {
        if (!/^basic /i.test(header.trimStart())) return unauthorized(request, 'malformed', 'credentials neither Bearer nor Basic', null, 'invalid_request');
        const outcome = await basic.authenticate(request);
        // Asked again for a token, not for Basic: the client then takes the token flow.
        return outcome.kind === 'refused' && outcome.status === 401 ? { ...outcome, headers: { 'www-authenticate': challenge(request, {}) } } : outcome;
      }
      const result = await tokens.verifyAccess(token);
      if (!result.ok) return unauthorized(request, 'mismatch', `bearer token refused: ${result.reason}`, null, 'invalid_token');
      if (verified.size >= maxEntries) verified.delete(verified.keys().next().value!);
      verified.set(token, result.value);
      return { kind: 'user', user: result.value.user, grant: result.value.grant };
    },
    insufficientScope(request, scope) {
      return {
        ...unauthorized(request, 'scope', `token lacks scope ${scope}`, null),
        headers: { 'www-authenticate': challenge(request, { scope, error: 'insufficient_scope' }) },
      };
    },
  };
}

function scopeOf(request: AuthRequest): string | null {
  return request.access === undefined ? null : requestScope(request.access());
}
