// The web UI wired to the gateway: its sign-in is the Basic scheme's (the same credential cache and
// login throttle as /v2/), its view of who may see what is the access file's, and what it deletes
// goes into the same record of events.

import type { AccessControl } from '../access/access-watch.js';
import { isAllowed } from '../access/decide.js';
import type { AuthScheme } from '../auth/scheme.js';
import type { UiConfig } from '../config/types.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import type { ManifestCache } from '../proxy/manifest-cache.js';
import type { Upstream } from '../proxy/upstream.js';
import type { RequestContext } from '../registry/context.js';
import { createWebHandler, type WebSignIn } from '../web/handler.js';
import { createSessions } from '../web/session.js';
import type { SessionKey } from '../web/session-key.js';
import type { EventRecord } from './event-record.js';
import type { Logger } from './logger.js';

export interface WebUiOptions {
  readonly config: UiConfig;
  readonly key: SessionKey;
  /** Signs in a username and password (the Basic scheme of /v2/ and /token). */
  readonly basic: AuthScheme;
  /** The users' current htpasswd hashes: a session ends when its user's entry changes. */
  readonly hashOf: (user: string) => string | undefined;
  readonly access: AccessControl | null;
  readonly upstream: Upstream;
  /** The manifest cache, whose copies a delete here must drop; null when it is off. */
  readonly manifests: ManifestCache | null;
  readonly record: EventRecord;
  readonly publicUrl: URL | null;
  readonly log: Logger;
  readonly metrics: GatewayMetrics | null;
}

export function createWebUi(options: WebUiOptions): (ctx: RequestContext) => Promise<void> {
  const { basic, metrics } = options;
  const signIn = async (username: string, password: string, remoteAddress: string): Promise<WebSignIn> => {
    const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const outcome = await basic.authenticate({ headers: { authorization }, remoteAddress });
    if (outcome.kind === 'user') return { ok: true, user: outcome.user };
    if (outcome.kind !== 'refused') return { ok: false, status: 401, message: 'Wrong user name or password.', retryAfterS: null, user: username, detail: 'not signed in' };
    metrics?.authFailed(outcome.reason);
    const retryAfterS = outcome.status === 429 ? Number(outcome.headers['retry-after'] ?? 1) : null;
    const message = outcome.status === 401 ? 'Wrong user name or password.' : outcome.status === 429 ? `Too many failed sign-ins for this user: try again in ${retryAfterS} s.` : 'Too many sign-ins at once: try again in a moment.';
    return { ok: false, status: outcome.status, message, retryAfterS, user: outcome.user, detail: outcome.detail };
  };
  return createWebHandler({
    sessions: createSessions({ secret: options.key.secret, ttlS: options.config.sessionTtlS, hashOf: options.hashOf }),
    signIn,
    may: (user, action, repository) => {
      const policy = options.access?.policy() ?? null;
      return policy === null || isAllowed(policy, user, action, repository);
    },
    upstream: options.upstream,
    record: options.record,
    changed: (repository) =>
      new Promise<void>((resolve) => {
        if (options.manifests === null) resolve();
        else options.manifests.changed(repository, resolve);
      }),
    publicUrl: options.publicUrl,
    log: options.log,
  });
}
