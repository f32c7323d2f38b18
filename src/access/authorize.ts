// The authorization step of the pipeline, between authentication and the upstream: what the
// request needs, whether the policy grants it, the 403 when not, and the audit trail of pushes,
// deletes and refusals ("who pushed this image" must have an answer). Two checks come first and
// hold with or without a policy: a body the registry could read parameters from, and a name too
// long for the registry, never reach it.

import type { Logger } from 'pino';
import { API_VERSION, API_VERSION_HEADER, sendJson, type RegistryErrorCode } from '../registry/answers.js';
import { declaresBody, hasUnreadBody, routeOf, type RequestContext } from '../registry/context.js';
import { failure } from '../registry/failure.js';
import { uncoveredScope } from '../registry/grant.js';
import { isOverlongPath, mayHoldOverlongName, type RequestAccess } from '../registry/routes.js';
import { ACCEPTED_BODY_TYPES, bodyTypeProblem } from './body-type.js';
import { firstRefusedNeed } from './decide.js';
import type { AccessPolicy } from './policy.js';

/** `insufficient`: the scope the request's token lacks; the caller answers with its scheme's 401. */
export type Authorized = 'forward' | 'catalog' | 'denied' | { readonly insufficient: string };

// Manifest pushes and deletes are audited; an upload start may name a mount source.
const NEEDS_MAPPING_WITHOUT_POLICY = new Set(['PUT', 'DELETE', 'POST']);

/** What the registry's own token auth answers; docker prints "denied: requested access to the resource is denied". */
export const DENIED_MESSAGE = 'requested access to the resource is denied';

/** A refusal in the registry's error format, and why, for the audit line. */
interface Refusal {
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly message: string;
  readonly detail: unknown;
  readonly logged: { repository?: string; action?: string; target?: string; reason?: string };
}

/**
 * Decides for an authenticated request (ctx.user set) and answers the refusal itself when it may
 * not pass. With no policy everything passes those first checks allow, as before access control
 * existed; pushes and deletes are still audited.
 */
export function authorize(ctx: RequestContext, policy: AccessPolicy | null, log: Logger): Authorized {
  const early = refusalBeforeRouting(ctx);
  if (early !== null) return refuse(ctx, log, early);
  // Without a policy only pushes and deletes need mapping, for the audit trail, and requests that
  // could name a repository too long for the registry (a long path, a mount's source).
  if (policy === null && ctx.grant === null && !NEEDS_MAPPING_WITHOUT_POLICY.has(ctx.req.method ?? '') && !mayHoldOverlongName(ctx.path)) return 'forward';
  const access = routeOf(ctx);
  if (access.kind === 'invalid-name') return refuse(ctx, log, nameInvalid(access.reason));
  // A token reaches no further than its scope, whatever the access file says now; within its
  // scope, the access file is asked again below, so a rule removed takes effect at once.
  const missing = ctx.grant === null ? null : uncoveredScope(ctx.grant, access);
  if (missing !== null) {
    ctx.failure = failure('auth', `token lacks scope ${missing}`);
    log.info({ audit: 'denied', user: ctx.user, remote: ctx.remoteAddress, method: ctx.req.method, path: ctx.path, scope: missing, reason: 'insufficient scope' }, 'access denied');
    return { insufficient: missing };
  }
  if (policy === null) {
    auditWhenStored(ctx, access, log);
    return 'forward';
  }
  const user = ctx.user!;
  if (access.kind === 'ping') return 'forward';
  if (access.kind === 'catalog') return 'catalog';
  if (access.kind === 'unmapped') return refuse(ctx, log, denied({ reason: access.reason }));
  const refused = firstRefusedNeed(policy, user, access.needs);
  if (refused !== null) {
    return refuse(ctx, log, denied({ repository: refused.repository, action: refused.action, ...(refused.repository === access.repository ? {} : { target: access.repository }) }));
  }
  auditWhenStored(ctx, access, log);
  return 'forward';
}

/** The checks that hold for every request, with or without a policy, before any route is matched. */
function refusalBeforeRouting(ctx: RequestContext): Refusal | null {
  // Go parses a form body on any method (multipart) and on POST, PUT and PATCH (urlencoded).
  const bodyProblem = declaresBody(ctx.req) ? bodyTypeProblem(ctx.req.rawHeaders) : null;
  if (bodyProblem !== null) {
    return {
      status: 415,
      code: 'UNSUPPORTED',
      message: `unsupported request Content-Type: a request body must have no Content-Type header or one of ${ACCEPTED_BODY_TYPES}`,
      detail: { reason: bodyProblem },
      logged: { reason: bodyProblem },
    };
  }
  if (isOverlongPath(ctx.path)) return nameInvalid(`a path of ${ctx.path.length} characters, too long for any repository name`);
  return null;
}

/** What the registry answers for a name it cannot take (its own answer to an overlong one is a 500). */
function nameInvalid(reason: string): Refusal {
  return { status: 400, code: 'NAME_INVALID', message: 'invalid repository name', detail: { reason }, logged: { reason } };
}

function denied(what: { repository?: string; action?: string; target?: string; reason?: string }): Refusal {
  // The registry's token auth puts the refused access in the detail, as we do. Without a detail,
  // clients built on its code (docker) shorten the error to the bare word "denied".
  const detail = what.repository !== undefined ? [{ Type: 'repository', Name: what.repository, Action: what.action }] : { reason: what.reason };
  return { status: 403, code: 'DENIED', message: DENIED_MESSAGE, detail, logged: what };
}

function refuse(ctx: RequestContext, log: Logger, refusal: Refusal): 'denied' {
  const what = refusal.logged;
  ctx.failure = failure('denied', what.reason !== undefined ? `access denied: ${what.reason}` : `access denied: ${what.action} on ${what.repository}`);
  log.info({ audit: 'denied', user: ctx.user, remote: ctx.remoteAddress, method: ctx.req.method, path: ctx.path, ...what }, 'access denied');
  const body = JSON.stringify({ errors: [{ code: refusal.code, message: refusal.message, detail: refusal.detail }] });
  // A body we will not read must not be left on a connection we keep.
  sendJson(ctx.res, refusal.status, body, { [API_VERSION_HEADER]: API_VERSION, ...(hasUnreadBody(ctx.req) ? { connection: 'close' } : {}) });
  return 'denied';
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
