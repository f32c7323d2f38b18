// The auth seam: what the request pipeline asks of a sign-in scheme. A scheme looks at a request
// and answers who it is (a user, or anonymous where the scheme lets anonymous requests through),
// or a refusal that carries its own status, registry error code and challenge headers. The
// pipeline knows no scheme by name: it writes what the refusal says. A new scheme is one file in
// auth/ implementing this, and one line where the gateway chooses its scheme (server/gateway.ts).

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { RegistryErrorCode } from '../registry/answers.js';

/** Why a request was refused sign-in, for metrics: a small fixed set. */
export type AuthFailure = 'missing' | 'malformed' | 'mismatch' | 'throttled' | 'busy';
export const AUTH_FAILURES: readonly AuthFailure[] = ['missing', 'malformed', 'mismatch', 'throttled', 'busy'];

/** What a scheme sees of a request. */
export interface AuthRequest {
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string;
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

export type AuthOutcome = { readonly kind: 'user'; readonly user: string } | { readonly kind: 'anonymous' } | AuthRefusal;

export interface AuthScheme {
  /**
   * The user, when the request's credentials are known good right now without waiting (a recent
   * success): the synchronous path almost every request of a push or pull takes. Undefined means
   * "ask authenticate()", not "refused".
   */
  recall(request: AuthRequest): string | undefined;
  /** Resolves to who the request is, or the refusal to answer; rejects only on faults of the gateway. */
  authenticate(request: AuthRequest): Promise<AuthOutcome>;
  /** The challenge the gateway answers in place of any the upstream sends (WWW-Authenticate). */
  readonly challenge: string;
}
