// The auth seam: what the request pipeline asks of a sign-in scheme. A scheme looks at a request
// and answers who it is (a user, or anonymous where the scheme lets anonymous requests through),
// who it claims to be when the scheme leaves checking to the registry (unverified), or a refusal
// that carries its own status, registry error code and challenge headers. The
// pipeline knows no scheme by name: it writes what the refusal says. A new scheme is one file in
// auth/ implementing this, and one line where the gateway chooses its scheme (server/gateway.ts).

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { RegistryErrorCode } from '../registry/answers.js';
import type { Grant } from '../registry/grant.js';
import type { RequestAccess } from '../registry/routes.js';

/** Why a request was refused sign-in, for metrics: a small fixed set. */
export type AuthFailure = 'missing' | 'malformed' | 'mismatch' | 'throttled' | 'busy' | 'scope';
export const AUTH_FAILURES: readonly AuthFailure[] = ['missing', 'malformed', 'mismatch', 'throttled', 'busy', 'scope'];

/** What a scheme sees of a request. */
export interface AuthRequest {
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string;
  /** The registry API route the request maps to (worked out on first call): what a challenge's scope names. */
  readonly access?: () => RequestAccess;
}

/**
 * A signed-in request: the user (or the anonymous principal), and for a bearer token what it
 * grants (null: credentials that carry no scope, such as Basic; only the access file decides).
 */
export interface SignedIn {
  readonly kind: 'user';
  readonly user: string;
  readonly grant: Grant | null;
}

export interface AuthRefusal {
  readonly kind: 'refused';
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly message: string;
  /** The challenge (WWW-Authenticate), Retry-After and the like. */
  readonly headers: OutgoingHttpHeaders;
  /** Who the request claimed to be, for the access log; null when it claimed nobody readable. */
  readonly user: string | null;
  readonly reason: AuthFailure;
  /** Why, in words fit for the log (never a credential). */
  readonly detail: string;
}

/**
 * Passed on without being checked: the registry signs the request in itself. `user` is who its
 * credentials claim to be, read but not verified (for the log only), or null when they name nobody
 * readable.
 */
export interface AuthUnverified {
  readonly kind: 'unverified';
  readonly user: string | null;
}

export type AuthOutcome = SignedIn | { readonly kind: 'anonymous' } | AuthUnverified | AuthRefusal;

export interface AuthScheme {
  /**
   * The user, when the request's credentials are known good right now without waiting (a recent
   * success): the synchronous path almost every request of a push or pull takes. Undefined means
   * "ask authenticate()", not "refused".
   */
  recall(request: AuthRequest): SignedIn | undefined;
  /** Resolves to who the request is, or the refusal to answer; rejects only on faults of the gateway. */
  authenticate(request: AuthRequest): Promise<AuthOutcome>;
  /**
   * The challenge the gateway answers in place of any the upstream sends (WWW-Authenticate); null
   * when the upstream's own is passed on (its realm moved onto the gateway's origin).
   */
  readonly challenge: string | null;
  /**
   * Whether the client's Authorization header goes on to the upstream, which then signs users in
   * itself: its 401 is how it asks for a login, not a misconfiguration, and every path but the
   * gateway's own goes to it (a token service beside the registry).
   */
  readonly forwardsCredentials: boolean;
  /**
   * The 401 for a signed-in request whose grant lacks what the request needs (`scope`): only
   * schemes whose credentials carry a grant (bearer tokens) have it.
   */
  insufficientScope?(request: AuthRequest, scope: string): AuthRefusal;
}
