// The upstream registry: one keep-alive agent shared by every request, and how its failures map
// to what the client is told.

import http from 'node:http';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Failure } from '../registry/failure.js';

export interface Upstream {
  readonly url: URL;
  readonly origin: string;
  /** Where requests connect: the URL's host name (an IPv6 address without its brackets) and port. */
  readonly hostname: string;
  readonly port: string | number;
  readonly agent: http.Agent;
  readonly timeoutMs: number;
  close(): void;
}

const UPSTREAM_WRITE_BUFFER = 256 * 1024;
const IDLE_UPSTREAM_MS = 30_000;

export function createUpstream(url: URL, timeoutMs: number): Upstream {
  const agent = new http.Agent({
    keepAlive: true,
    // Docker pulls and pushes several layers at once per client; leave room for many clients.
    maxSockets: 512,
    maxFreeSockets: 64,
    // Spreading requests over every open connection, rather than reusing the last one freed,
    // measured ~7% more small requests per second through the registry (bench/).
    scheduling: 'fifo',
    // An idle connection is closed after this long, well before a registry (or a proxy between)
    // would drop it under a request. Requests set their own, longer, timeout while they run.
    timeout: IDLE_UPSTREAM_MS,
    // Passed on to each socket: room for a whole TLS read of an upload (up to four 16 KiB records)
    // to go upstream in one write, instead of pausing the client after every record.
    writableHighWaterMark: UPSTREAM_WRITE_BUFFER,
  } as http.AgentOptions);
  return {
    url,
    origin: url.origin.toLowerCase(),
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || 80,
    agent,
    timeoutMs,
    close: () => agent.destroy(),
  };
}

/**
 * Options for one request to the upstream. `bodiless`: the request sends no body (see headLines).
 */
export function upstreamRequestOptions(upstream: Upstream, method: string, path: string, headers: http.OutgoingHttpHeaders, bodiless = true): http.RequestOptions {
  return {
    protocol: 'http:',
    hostname: upstream.hostname,
    port: upstream.port,
    method,
    path,
    headers: headLines(headers, upstream.url.host, method, bodiless),
    agent: upstream.agent,
  };
}

/** Methods Node sends without any framing header when they have no body (no chunked default). */
const UNFRAMED_WITHOUT_BODY = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * The head as one flat list, name, value, name, value: Node writes such a list as it is, in one
 * pass, where an object has it set and check each header on its own first, on every request.
 * Node adds nothing to such a list, so a Host is added here when the headers have none, the one
 * Node would add (`host`: the upstream URL's host[:port]). And the list is written when the request
 * is made, before Node knows a body-less request will end empty: without a length it would frame
 * a POST's or PUT's nothing as chunked, so it gets the `Content-Length: 0` Node itself writes for
 * it when the head waits for end().
 */
export function headLines(headers: http.OutgoingHttpHeaders, host: string, method: string, bodiless: boolean): string[] {
  const lines: string[] = headers.host === undefined ? ['host', host] : [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) lines.push(name, one);
    else lines.push(name, String(value));
  }
  if (bodiless && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined && !UNFRAMED_WITHOUT_BODY.has(method)) {
    lines.push('content-length', '0');
  }
  return lines;
}

export interface UpstreamFailure extends Failure {
  readonly status: 408 | 502 | 504;
  /** What the client is told. */
  readonly message: string;
}

/** What to tell the client when the upstream request failed before any response header. */
export function describeUpstreamFailure(err: unknown): UpstreamFailure {
  if (isGatewayError(err, 'CLIENT_TIMEOUT')) {
    return { kind: 'client-timeout', status: 408, message: 'request body stalled', detail: err.message };
  }
  if (isGatewayError(err, 'UPSTREAM_TIMEOUT')) {
    return { kind: 'upstream-timeout', status: 504, message: 'upstream registry timed out', detail: err.message };
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = code ?? String((err as Error)?.message ?? err);
  // The operating system gave up connecting (a host that drops packets) before our own timer did.
  if (code === 'ETIMEDOUT') return { kind: 'upstream-timeout', status: 504, message: 'upstream registry timed out', detail };
  // Node's HTTP parser refused what came back: a malformed head, a CR/LF inside a header, bad framing.
  if (code?.startsWith('HPE_')) return { kind: 'upstream-bad-response', status: 502, message: 'upstream registry sent an unusable response', detail: `${code}: ${(err as Error).message}` };
  return { kind: 'upstream-unavailable', status: 502, message: 'upstream registry unavailable', detail };
}

export function upstreamTimeout(upstream: Upstream): GatewayError {
  return new GatewayError('UPSTREAM_TIMEOUT', `no answer from ${upstream.origin} within ${upstream.timeoutMs} ms`);
}

export function clientStalled(timeoutMs: number): GatewayError {
  return new GatewayError('CLIENT_TIMEOUT', `client sent no request body for ${timeoutMs} ms`);
}
