// The authorization step of the pipeline, between authentication and the upstream: what the
// request needs, whether the policy grants it, the 403 when not, and the audit trail of pushes,
// deletes and refusals ("who pushed this image" must have an answer).

import type { Logger } from 'pino';
import type { RequestContext } from '../server/context.js';
import { hasUnreadBody } from '../server/context.js';
import { API_VERSION, API_VERSION_HEADER } from '../proxy/headers.js';
import { sendJson } from '../server/responses.js';
import { requestAccess, type RequestAccess } from './actions.js';
import { firstRefusedNeed } from './decide.js';
import type { AccessPolicy } from './policy.js';

export type Authorized = 'forward' | 'catalog' | 'denied';

/** What the registry's own token auth answers; docker prints "denied: requested access to the resource is denied". */
export const DENIED_MESSAGE = 'requested access to the resource is denied';

function accessOf(ctx: RequestContext): RequestAccess {
  const target = ctx.req.url ?? '';
  const queryAt = target.indexOf('?');
  return requestAccess({
    method: ctx.req.method ?? 'GET',
    path: ctx.path,
    query: queryAt === -1 ? '' : target.slice(queryAt + 1),
    contentType: ctx.req.headers['content-type'],
  });
}

/**
 * Decides for an authenticated request (ctx.user set) and answers 403 itself when it may not
 * pass. With no policy everything passes, as before access control existed; pushes and deletes
 * are still audited.
 */
export function authorize(ctx: RequestContext, policy: AccessPolicy | null, log: Logger): Authorized {
  const method = ctx.req.method;
  // Without a policy only pushes and deletes need mapping, for the audit trail.
  if (policy === null && method !== 'PUT' && method !== 'DELETE') return 'forward';
  const access = accessOf(ctx);
  if (policy === null) {
    auditWhenStored(ctx, access, log);
    return 'forward';
  }
  const user = ctx.user!;
  if (access.kind === 'ping') return 'forward';
  if (access.kind === 'catalog') return 'catalog';
  if (access.kind === 'unmapped') {
    deny(ctx, log, { reason: access.reason });
    return 'denied';
  }
  const refused = firstRefusedNeed(policy, user, access.needs);
  if (refused !== null) {
    deny(ctx, log, { repository: refused.repository, action: refused.action, ...(refused.repository === access.repository ? {} : { target: access.repository }) });
    return 'denied';
  }
  auditWhenStored(ctx, access, log);
  return 'forward';
}

function deny(ctx: RequestContext, log: Logger, what: { repository?: string; action?: string; target?: string; reason?: string }): void {
  ctx.failure = what.reason !== undefined ? `access denied: ${what.reason}` : `access denied: ${what.action} on ${what.repository}`;
  log.info({ audit: 'denied', user: ctx.user, remote: ctx.remoteAddress, method: ctx.req.method, path: ctx.path, ...what }, 'access denied');
  // The registry's token auth puts the refused access in the detail, as we do. Without a detail,
  // clients built on its code (docker) shorten the error to the bare word "denied".
  const detail = what.repository !== undefined ? [{ Type: 'repository', Name: what.repository, Action: what.action }] : { reason: what.reason };
  const body = JSON.stringify({ errors: [{ code: 'DENIED', message: DENIED_MESSAGE, detail }] });
  // A body we will not read must not be left on a connection we keep.
  sendJson(ctx.res, 403, body, { [API_VERSION_HEADER]: API_VERSION, ...(hasUnreadBody(ctx.req) ? { connection: 'close' } : {}) });
}

/** One audit line once the registry has stored a manifest or deleted something. */
function auditWhenStored(ctx: RequestContext, access: RequestAccess, log: Logger): void {
  if (access.kind !== 'repository') return;
  const event = access.action === 'delete' ? 'delete' : access.route === 'manifest' && access.action === 'push' ? 'push' : null;
  if (event === null) return;
  // Node keeps the headers of writeHead(status, headers) readable by getHeader() only when some
  // header was set before; this one the relay sends anyway, with this value.
  ctx.res.setHeader(API_VERSION_HEADER, API_VERSION);
  ctx.res.once('finish', () => {
    const status = ctx.upstreamStatus;
    if (status === null || status < 200 || status > 299) return;
    const reference = access.reference ?? '';
    const isDigest = reference.includes(':');
    const digest = isDigest ? reference : ctx.res.getHeader('docker-content-digest');
    log.info(
      {
        audit: event,
        repository: access.repository,
        ...(isDigest ? {} : { tag: reference }),
        ...(digest === undefined ? {} : { digest }),
        ...(access.route === 'blob' ? { blob: true } : {}),
        user: ctx.user,
        remote: ctx.remoteAddress,
        status,
      },
      event === 'push' ? 'image pushed' : 'deleted',
    );
  });
}
