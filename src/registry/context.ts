// What one request carries through the pipeline, and what its access-log line reports.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Failure } from './failure.js';
import type { Grant } from './grant.js';
import { requestAccess, type RequestAccess } from './routes.js';

/** A request's method, path and query, and the route they map to, worked out once (routeOf). */
export interface Routed {
  readonly method: string;
  /** The request target's path, without the query (canonical once routed). */
  readonly path: string;
  /** The raw query without "?", forwarded byte for byte; null when the target has no "?". */
  readonly query: string | null;
  route: RequestAccess | null;
}

export interface RequestContext extends Routed {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedAt: bigint;
  /** The request target's path, without the query: what routing and logs see (canonical once routed). */
  path: string;
  readonly remoteAddress: string;
  user: string | null;
  /**
   * False when `user` is only what the credentials claim, passed on unchecked for the registry to
   * verify (`--auth upstream`); the access log then says `userVerified: false`.
   */
  userVerified: boolean;
  /** What the request's bearer token grants; null for credentials that carry no scope. */
  grant: Grant | null;
  /** Set once the request was handed to the upstream. */
  forwarded: boolean;
  upstreamStatus: number | null;
  bytesIn: number;
  bytesOut: number;
  /** Why the request failed, in words fit for the log (never a credential). */
  failure: Failure | null;
  /** Answered from the gateway's copy of a manifest the upstream served moments before. */
  cached: boolean;
}

/** A method and request target split once into path and query, not routed yet. */
export function routed(method: string, target: string): Routed {
  const queryAt = target.indexOf('?');
  return {
    method,
    path: queryAt === -1 ? target : target.slice(0, queryAt),
    query: queryAt === -1 ? null : target.slice(queryAt + 1),
    route: null,
  };
}

export function createContext(req: IncomingMessage, res: ServerResponse): RequestContext {
  const target = routed(req.method ?? 'GET', req.url ?? '/');
  // Its fields one by one rather than spread: a spread here cost more than the rest of this function.
  return {
    req,
    res,
    startedAt: process.hrtime.bigint(),
    method: target.method,
    path: target.path,
    query: target.query,
    route: null,
    remoteAddress: req.socket.remoteAddress ?? 'unknown',
    user: null,
    userVerified: true,
    grant: null,
    forwarded: false,
    upstreamStatus: null,
    bytesIn: 0,
    bytesOut: 0,
    failure: null,
    cached: false,
  };
}

/**
 * The route of the request: mapped on first use, after the path was made canonical, and then
 * shared by authorization, the manifest cache and forwarding.
 */
export function routeOf(request: Routed): RequestAccess {
  return (request.route ??= requestAccess({ method: request.method, path: request.path, query: request.query ?? '' }));
}

/** Whether the request is framed as having a body: Transfer-Encoding, or a non-zero Content-Length. */
export function declaresBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** True while the request may still have body bytes the server has not read. */
export function hasUnreadBody(req: IncomingMessage): boolean {
  return !req.complete && declaresBody(req);
}

/** Body bytes sent: answers the gateway writes itself by their length, relayed ones as they streamed. */
export function responseBytes(ctx: RequestContext): number {
  return ctx.upstreamStatus === null ? Number(ctx.res.getHeader('content-length') ?? 0) : ctx.bytesOut;
}

export function accessLogFields(ctx: RequestContext): Record<string, unknown> {
  return {
    method: ctx.req.method,
    path: ctx.path,
    status: ctx.res.statusCode,
    bytesIn: ctx.bytesIn,
    bytesOut: responseBytes(ctx),
    durationMs: Number((process.hrtime.bigint() - ctx.startedAt) / 1000n) / 1000,
    user: ctx.user,
    ...(ctx.userVerified ? {} : { userVerified: false }),
    remote: ctx.remoteAddress,
    upstreamStatus: ctx.upstreamStatus,
    ...(ctx.cached ? { cache: 'hit' } : {}),
    completed: ctx.res.writableFinished,
    ...(ctx.failure ? { failure: ctx.failure.detail, failureKind: ctx.failure.kind } : {}),
  };
}
