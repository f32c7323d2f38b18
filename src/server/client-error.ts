// Requests Node's parser refuses (bad framing, oversized or late headers) are answered here rather
// than by Node's bare default: with HSTS and a registry-style error body like every other answer,
// and with the status in the access log of a request already under way, instead of the 200 its
// response object was left holding.

import type { Duplex } from 'node:stream';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { API_VERSION } from '../registry/answers.js';
import { registryErrorBody } from '../registry/answers.js';

export interface ClientErrorAnswer {
  readonly status: number;
  /** The parser's code (HPE_INVALID_CHUNK_SIZE, ...), for the log. */
  readonly reason: string;
}

const answered = new WeakMap<Duplex, ClientErrorAnswer>();

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  431: 'Request Header Fields Too Large',
};

/** The status Node itself would answer with, and why. */
export function clientErrorAnswer(err: NodeJS.ErrnoException): ClientErrorAnswer {
  const reason = err.code ?? 'malformed request';
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, reason };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, reason };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, reason };
    default:
      return { status: 400, reason };
  }
}

/** The whole answer, bytes ready for the socket: the parser's state rules out a ServerResponse. */
export function clientErrorResponse(status: number, hstsMaxAge: number): string {
  const body = registryErrorBody('UNSUPPORTED', status === 408 ? 'request headers not received in time' : 'malformed request');
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Bad Request'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'X-Content-Type-Options: nosniff',
    `Docker-Distribution-API-Version: ${API_VERSION}`,
    ...(hstsMaxAge > 0 ? [`Strict-Transport-Security: max-age=${hstsMaxAge}`] : []),
    'Connection: close',
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** The server's 'clientError' listener: answer if nothing of a response went out yet, and close. */
export function handleClientError(err: NodeJS.ErrnoException, socket: Duplex, hstsMaxAge: number, log: Logger): void {
  const answer = clientErrorAnswer(err);
  answered.set(socket, answer);
  const remote = (socket as { remoteAddress?: string }).remoteAddress; // gone once destroyed
  // Node's own handler makes this same check: the response of the request under way, if any.
  const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent && err.code !== 'ECONNRESET') {
    socket.write(clientErrorResponse(answer.status, hstsMaxAge));
  }
  // At once, as Node does: a request whose framing broke must not reach the upstream, and the
  // pipeline checks for a destroyed socket before it forwards.
  socket.destroy();
  // A request under way gets its access-log line from the pipeline; one that never parsed, here.
  if (!inFlight) log.info({ status: answer.status, reason: answer.reason, remote }, 'malformed request');
}

/** What handleClientError answered on this connection, if anything. */
export function clientErrorOn(socket: Duplex): ClientErrorAnswer | undefined {
  return answered.get(socket);
}
