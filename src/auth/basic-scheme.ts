// HTTP Basic sign-in against the htpasswd users (RFC 7617), as the auth seam's first scheme: the
// credential cache and shared verifications of the authenticator, and the login throttle that
// makes repeated failures for one user from one client wait.

import { isGatewayError } from '../errors.js';
import type { Authenticator } from './authenticator.js';
import { parseBasicAuthorization } from './basic.js';
import { clientKey } from './client-key.js';
import type { AuthOutcome, AuthRefusal, AuthScheme } from './scheme.js';
import type { AttemptOutcome, LoginThrottle } from './throttle.js';

export interface BasicSchemeOptions {
  readonly authenticator: Authenticator;
  /** Waits imposed on repeated failed logins. */
  readonly throttle: LoginThrottle;
  readonly realm: string;
}

/** The gateway's own Basic challenge. */
export function basicChallenge(realm: string): string {
  return `Basic realm="${realm}"`;
}

export function createBasicScheme({ authenticator, throttle, realm }: BasicSchemeOptions): AuthScheme {
  const challenge = basicChallenge(realm);
  const unauthorized = (user: string | null, reason: AuthRefusal['reason'], detail: string): AuthRefusal => ({
    kind: 'refused', status: 401, code: 'UNAUTHORIZED', message: 'authentication required', headers: { 'www-authenticate': challenge }, user, reason, detail,
  });

  return {
    challenge,
    forwardsCredentials: false,
    recall({ headers, remoteAddress }) {
      const user = authenticator.recall(headers.authorization);
      // A throttled client is refused even the right password: answering it while refusing the
      // wrong ones would tell a guesser which guess was right.
      if (user === undefined || throttle.retryAfterMs(remoteAddress, user) > 0) return undefined;
      throttle.succeeded(remoteAddress, user);
      return { kind: 'user', user, grant: null };
    },
    async authenticate({ headers, remoteAddress }): Promise<AuthOutcome> {
      const header = headers.authorization;
      const claimed = claimedUser(header);
      // The same header as a verification already running is the same guess: it joins that one
      // and takes no place of its own among the attempts in flight.
      const attempt = claimed !== null && !authenticator.verifying(header);
      const waitMs = claimed === null ? 0 : attempt ? throttle.begin(remoteAddress, claimed) : throttle.retryAfterMs(remoteAddress, claimed);
      // Not even checked: a guesser gets no answer about this password, and costs no verification.
      if (waitMs > 0) return throttled(claimed, waitMs);
      let outcome: AttemptOutcome = 'abandoned';
      try {
        const result = await authenticator.authenticate(header, clientKey(remoteAddress));
        if (result.ok) {
          outcome = 'succeeded';
          if (!attempt) throttle.succeeded(remoteAddress, result.user);
          return { kind: 'user', user: result.user, grant: null };
        }
        if (result.reason === 'mismatch' && result.user !== null) outcome = 'failed';
        return unauthorized(result.user, result.reason, `authentication ${result.reason}`);
      } catch (err) {
        if (!isGatewayError(err, 'AUTH_BUSY') && !isGatewayError(err, 'AUTH_WORKER_FAILED')) throw err;
        const detail = err.code === 'AUTH_BUSY' ? 'authentication overloaded' : 'password verification failed';
        return { kind: 'refused', status: 503, code: 'UNAVAILABLE', message: 'too many logins at once; retry shortly', headers: { 'retry-after': '1' }, user: null, reason: 'busy', detail };
      } finally {
        if (attempt) throttle.finish(remoteAddress, claimed, outcome);
      }
    },
  };
}

/** 429 for a client that must wait before this user is tried again. */
function throttled(user: string | null, waitMs: number): AuthRefusal {
  const seconds = Math.ceil(waitMs / 1000);
  return {
    kind: 'refused',
    status: 429,
    code: 'TOOMANYREQUESTS',
    message: `too many failed logins for this user from this address; retry in ${seconds} s`,
    headers: { 'retry-after': String(seconds) },
    user,
    reason: 'throttled',
    detail: 'login throttled after repeated failures',
  };
}

/** The user name a Basic header claims, or null when it does not parse. */
function claimedUser(header: string | undefined): string | null {
  const parsed = parseBasicAuthorization(header);
  return parsed.ok ? parsed.credentials.user : null;
}
