// The gateway's bearer tokens, made and checked by jose (no JWS of our own): access tokens as the
// distribution token spec has them (`access` claim, short-lived) and refresh tokens (long-lived,
// given to `docker login` instead of storing the password). The two have different `typ` headers,
// so neither is ever taken for the other. Both name the user's htpasswd entry (`uh`, a digest of
// the user's name and hash): a removed user or a changed password ends them, with no database.

import { createHash, randomUUID } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { accessClaim, ANONYMOUS, grantFromClaim, type Grant } from '../registry/grant.js';
import type { TokenKeys } from './token-keys.js';

const ACCESS_TYPE = 'JWT';
const REFRESH_TYPE = 'refresh+jwt';
// Clocks of replicas (and of the gateway and a client) drift a little.
const CLOCK_TOLERANCE_S = 30;
/** Longer than any token the gateway makes: a longer one is refused unread. */
export const MAX_TOKEN_CHARS = 8 * 1024;

export interface TokenSettings {
  readonly keys: TokenKeys;
  /** `iss` and `aud`: the token service's name (`--token-service`). */
  readonly service: string;
  readonly accessTtlS: number;
  readonly refreshTtlS: number;
  /** The current htpasswd hash of a user, or undefined when there is no such user now. */
  readonly hashOf: (user: string) => string | undefined;
}

export interface IssuedToken {
  readonly token: string;
  readonly expiresIn: number;
  readonly issuedAt: Date;
}

export type Verified<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

export interface AccessTokenClaims {
  readonly user: string;
  readonly grant: Grant;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** The user's entry it was made for; null for the anonymous principal. */
  readonly binding: string | null;
}

export interface Tokens {
  issueAccess(user: string, grant: Grant, now?: Date): Promise<IssuedToken>;
  issueRefresh(user: string, now?: Date): Promise<IssuedToken>;
  verifyAccess(token: string): Promise<Verified<AccessTokenClaims>>;
  /** The user a refresh token was made for, when it is still good. */
  verifyRefresh(token: string): Promise<Verified<string>>;
  /** The binding of a user's entry as it is now; null when the user does not exist now. */
  bindingOf(user: string): string | null;
}

/** Users whose binding is kept; only users of the htpasswd file are ever kept, so this is never reached in practice. */
const MAX_REMEMBERED_BINDINGS = 100_000;

export function createTokens(settings: TokenSettings): Tokens {
  const { keys, service } = settings;
  const keySet = createLocalJWKSet({ keys: [...keys.verifying] });
  const algorithms = [...new Set(keys.verifying.map((k) => k.alg as string))];

  // Asked on every request a remembered token makes: the digest is kept per user, and made again
  // only when the user's hash is another one (a new password).
  const bindings = new Map<string, { readonly hash: string; readonly binding: string }>();
  const bindingOf = (user: string): string | null => {
    const hash = settings.hashOf(user);
    if (hash === undefined) return null;
    const known = bindings.get(user);
    if (known !== undefined && known.hash === hash) return known.binding;
    if (bindings.size >= MAX_REMEMBERED_BINDINGS) bindings.clear();
    const binding = createHash('sha256').update(`${user}\n${hash}`).digest('base64url').slice(0, 22);
    bindings.set(user, { hash, binding });
    return binding;
  };

  const sign = async (typ: string, user: string, claims: JWTPayload, ttlS: number, now: Date): Promise<IssuedToken> => {
    const iat = Math.floor(now.getTime() / 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ })
      .setIssuer(service)
      .setSubject(user)
      .setAudience(service)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + ttlS)
      .setJti(randomUUID())
      .sign(keys.signing.key);
    return { token, expiresIn: ttlS, issuedAt: new Date(iat * 1000) };
  };

  const verify = async (token: string, typ: string): Promise<Verified<JWTPayload>> => {
    if (token.length > MAX_TOKEN_CHARS) return { ok: false, reason: `a token of ${token.length} characters` };
    try {
      const { payload } = await jwtVerify(token, keySet, {
        algorithms,
        issuer: service,
        audience: service,
        typ,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['sub', 'exp', 'nbf', 'iat', 'jti'],
      });
      return { ok: true, value: payload };
    } catch (err) {
      return { ok: false, reason: refusalReason(err) };
    }
  };

  /** Whether a token made for `user` still names the user's entry as it is now. */
  const boundTo = (user: string, claim: unknown): Verified<string | null> => {
    if (user === ANONYMOUS) return claim === undefined ? { ok: true, value: null } : { ok: false, reason: 'an anonymous token naming a user entry' };
    const now = bindingOf(user);
    if (now === null) return { ok: false, reason: `user ${JSON.stringify(user)} no longer exists` };
    if (claim !== now) return { ok: false, reason: `the password of ${JSON.stringify(user)} changed since the token was made` };
    return { ok: true, value: now };
  };

  return {
    bindingOf,
    issueAccess(user, grant, now = new Date()) {
      const binding = user === ANONYMOUS ? undefined : bindingOf(user) ?? undefined;
      return sign(ACCESS_TYPE, user, { access: accessClaim(grant), ...(binding === undefined ? {} : { uh: binding }) }, settings.accessTtlS, now);
    },
    issueRefresh(user, now = new Date()) {
      return sign(REFRESH_TYPE, user, { uh: bindingOf(user) }, settings.refreshTtlS, now);
    },
    async verifyAccess(token) {
      const verified = await verify(token, ACCESS_TYPE);
      if (!verified.ok) return verified;
      const claims = verified.value;
      const user = claims.sub!;
      const grant = grantFromClaim(claims.access);
      if (grant === null) return { ok: false, reason: 'an access claim the gateway does not issue' };
      const bound = boundTo(user, claims.uh);
      if (!bound.ok) return bound;
      return { ok: true, value: { user, grant, expiresAt: claims.exp! * 1000, binding: bound.value } };
    },
    async verifyRefresh(token) {
      const verified = await verify(token, REFRESH_TYPE);
      if (!verified.ok) return verified;
      const user = verified.value.sub!;
      if (user === ANONYMOUS) return { ok: false, reason: 'a refresh token for nobody' };
      const bound = boundTo(user, verified.value.uh);
      return bound.ok ? { ok: true, value: user } : bound;
    },
  };
}

/** Why jose refused a token, in words fit for the log (never the token). */
function refusalReason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'expired token';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim ${err.claim} not accepted (${err.reason})`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature does not verify';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token signed with a key the gateway does not hold';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not accepted';
  if (err instanceof errors.JOSEError) return `malformed token (${err.code})`;
  return 'malformed token';
}
