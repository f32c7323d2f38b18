// --max-connections: the most client connections one process holds, so a flood of connections
// that never send a request cannot run the gateway out of descriptors and memory.
//
// Idle connections never keep anyone out. Like nginx, which reuses keep-alive connections when
// worker_connections run out, a new connection at the limit takes the place of the one idle the
// longest: still in its handshake, waiting for or sending its first request head, or resting
// between keep-alive requests. Only when every connection is busy with a request is a new one
// refused (closed before its handshake); and even then a few more are let in for /healthz and
// /readyz alone, so a container healthcheck does not restart a gateway that is merely full of
// transfers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { sendRegistryError } from '../registry/answers.js';

/** Connections beyond the limit kept for health checks while every other connection is busy. */
export const HEALTH_RESERVE = 8;
const NOTICE_INTERVAL_MS = 60_000;

interface Connection {
  readonly socket: Socket;
  /** connectionKey() of the socket. */
  readonly key: string;
  /** Requests in progress on it. */
  active: number;
  /** Let in beyond the limit: may only ask for health, and is closed after one answer. */
  readonly reserve: boolean;
}

export interface ConnectionLimitOptions {
  /** 0: no limit. */
  readonly max: number;
  readonly log: Logger;
  /** Strict-Transport-Security max-age for the 503 a reserve connection gets; 0 for none. */
  readonly hstsMaxAge: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface ConnectionLimit {
  /** Wraps the request handler: tracks which connections are busy and keeps reserve ones to health checks. */
  guard(handler: Handler): Handler;
}

/** The same TCP connection seen as the raw socket or as its TLS socket. */
function connectionKey(socket: Socket): string | null {
  return socket.remoteAddress === undefined ? null : `${socket.remoteAddress}|${socket.remotePort}`;
}

function isHealthPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?', 1)[0];
  return path === '/healthz' || path === '/readyz';
}

export function limitConnections(server: Server, options: ConnectionLimitOptions): ConnectionLimit {
  const all = new Map<string, Connection>();
  // Insertion order is the order they became idle: the first entry has been idle the longest.
  const idle = new Map<string, Connection>();
  let reserved = 0;
  const notice = createLimitNotice(options.max, options.log);

  const forget = (key: string, conn: Connection) => {
    if (all.get(key) !== conn) return;
    all.delete(key);
    idle.delete(key);
    if (conn.reserve) reserved--;
  };

  const admit = (socket: Socket): void => {
    const key = connectionKey(socket);
    if (key === null) return;
    // The address and port of a connection whose close is still on its way, now reused.
    const stale = all.get(key);
    if (stale !== undefined) forget(key, stale);
    let reserve = false;
    if (all.size - reserved >= options.max) {
      const oldest = idle.entries().next();
      if (!oldest.done) {
        const [oldKey, victim] = oldest.value;
        forget(oldKey, victim);
        victim.socket.destroy();
        reserve = victim.reserve;
        notice('closed');
      } else if (reserved < HEALTH_RESERVE) {
        reserve = true;
      } else {
        socket.destroy();
        notice('refused');
        return;
      }
    }
    const conn: Connection = { socket, key, active: 0, reserve };
    if (reserve) reserved++;
    all.set(key, conn);
    idle.set(key, conn);
    socket.once('close', () => forget(key, conn));
  };

  if (options.max > 0) server.on('connection', admit);

  // A request's socket is the TLS one, not the raw one admitted: found by key on its first
  // request, then remembered for the keep-alive requests after it.
  const known = new WeakMap<Socket, Connection>();
  const connectionOf = (socket: Socket): Connection | undefined => {
    let conn = known.get(socket);
    if (conn !== undefined) return conn;
    const key = connectionKey(socket);
    conn = key === null ? undefined : all.get(key);
    if (conn !== undefined) known.set(socket, conn);
    return conn;
  };

  const guard = (handler: Handler): Handler => {
    if (options.max === 0) return handler;
    return (req, res) => {
      const conn = connectionOf(req.socket);
      if (conn === undefined) return handler(req, res);
      const { key } = conn;
      conn.active++;
      idle.delete(key);
      // 'close' comes once per response: on() spares once()'s wrapper, made for every request.
      res.on('close', () => {
        conn.active--;
        if (conn.active === 0 && all.get(key) === conn) idle.set(key, conn);
      });
      if (!conn.reserve) return handler(req, res);
      res.setHeader('connection', 'close');
      if (isHealthPath(req.url)) return handler(req, res);
      if (options.hstsMaxAge > 0) res.setHeader('strict-transport-security', `max-age=${options.hstsMaxAge}`);
      sendRegistryError(res, 503, 'UNAVAILABLE', 'the gateway is serving as many connections as it may (--max-connections); retry shortly', { 'retry-after': '1' });
    };
  };

  return { guard };
}

/** Warns when the limit first bites, then at most once a minute with the counts since. */
function createLimitNotice(max: number, log: Logger): (what: 'closed' | 'refused') => void {
  let last = 0;
  const counts = { closed: 0, refused: 0 };
  return (what) => {
    counts[what]++;
    const now = Date.now();
    if (now - last < NOTICE_INTERVAL_MS) return;
    last = now;
    log.warn(
      { maxConnections: max, idleClosed: counts.closed, refused: counts.refused },
      `at the connection limit (--max-connections ${max}): closed the longest-idle connections or refused new ones; raise --max-connections if these were real clients`,
    );
    counts.closed = 0;
    counts.refused = 0;
  };
}
