// What one request carries through the pipeline, and what its access-log line reports.

import type { IncomingMessage, ServerResponse } from 'node:http';

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedAt: bigint;
  /** The request target's path, without the query: what routing and logs see (canonical once routed). */
  path: string;
  readonly remoteAddress: string;
  user: string | null;
  /** Set once the request was handed to the upstream. */
  forwarded: boolean;
  upstreamStatus: number | null;
  bytesIn: number;
  bytesOut: number;
  /** Why the request failed, in words fit for the log (never a credential). */
  failure: string | null;
  /** Answered from the gateway's copy of a manifest the upstream served moments before. */
  cached: boolean;
}

export function createContext(req: IncomingMessage, res: ServerResponse): RequestContext {
  const target = req.url ?? '/';
  const queryAt = target.indexOf('?');
  return {
    req,
    res,
    startedAt: process.hrtime.bigint(),
    path: queryAt === -1 ? target : target.slice(0, queryAt),
    remoteAddress: req.socket.remoteAddress ?? 'unknown',
    user: null,
    forwarded: false,
    upstreamStatus: null,
    bytesIn: 0,
    bytesOut: 0,
    failure: null,
    cached: false,
  };
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
    remote: ctx.remoteAddress,
    upstreamStatus: ctx.upstreamStatus,
    ...(ctx.cached ? { cache: 'hit' } : {}),
    completed: ctx.res.writableFinished,
    ...(ctx.failure ? { failure: ctx.failure } : {}),
  };
}
