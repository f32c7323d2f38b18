// HTTP-01 (RFC 8555 §8.3) on a plain listener of its own (--acme-http-listen): the CA fetches
// http://NAME/.well-known/acme-challenge/TOKEN on port 80 and expects the key authorization.
// Everything else it is asked gets a redirect to the same host and path on HTTPS, so the port can
// stay open between renewals as the usual "http to https" listener. It is on the open internet:
// it reads no bodies, proxies nothing, waits little for headers, and redirects only to a host
// name or IP address it has checked, never to whatever a client wrote into Host.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type AddressInfo } from 'node:net';
import { GatewayError } from '../errors.js';

export interface HttpChallengeOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The key authorization for a token of a pending HTTP-01 challenge, or null. */
  keyAuthorization(token: string): string | null;
  /** The port redirects point to; null for 443 (left out of the URL). */
  readonly httpsPort: number | null;
}

export interface HttpChallengeListener {
  /** The port bound. */
  readonly port: number;
  /** Stops listening and cuts open connections. */
  close(): Promise<void>;
}

const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** RFC 8555 §8.3: the token is base64url; a generous bound on its length. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const HOST_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** A DNS name as a URL may carry it; no trailing dot, no underscore. */
const HOST_NAME = new RegExp(`^(?=.{1,253}$)${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
/** WHATWG URL parsing reads a host whose last label is a number (decimal or 0x) as an IPv4 address. */
const NUMERIC_LABEL = /(?:^|\.)(?:0x[0-9a-f]*|[0-9]+)$/;
const MAX_TARGET = 4096;
const TIMEOUT_MS = 10_000;
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_CONNECTIONS = 512;

/** Binds the listener; rejects with LISTEN_FAILED when the address cannot be had. */
export function startHttpChallengeListener(options: HttpChallengeOptions): Promise<HttpChallengeListener> {
  const server = http.createServer(
    {
      headersTimeout: TIMEOUT_MS,
      requestTimeout: TIMEOUT_MS,
      keepAliveTimeout: 1_000,
      maxHeaderSize: MAX_HEADER_BYTES,
      // How often Node checks for connections past the headers timeout (30 s by default).
      connectionsCheckingInterval: 1_000,
      // A request without Host gets this listener's own 400, like one with a bad Host.
      requireHostHeader: false,
    },
    (req, res) => answer(req, res, options),
  );
  server.timeout = TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new GatewayError('LISTEN_FAILED', `cannot listen on ${options.host}:${options.port}: ${err.code ?? err.message}; check --acme-http-listen`, { cause: err }));
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      // Once listening, an error is a failed accept (EMFILE under a flood): Node goes on accepting,
      // and unheard the error would end the gateway.
      server.on('error', () => undefined);
      resolve({ port: (server.address() as AddressInfo).port, close: () => closeServer(server) });
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function answer(req: IncomingMessage, res: ServerResponse, options: HttpChallengeOptions): void {
  // One request per connection: a body never read cannot be mistaken for the next request, and a
  // client cannot keep a connection going here.
  res.setHeader('connection', 'close');
  res.setHeader('x-content-type-options', 'nosniff');
  const hosts = req.headersDistinct.host;
  const host = hosts?.length === 1 ? canonicalHost(hosts[0]!) : null;
  if (host === null) return send(res, 400, 'a single valid Host header is required\n');
  const target = req.url ?? '';
  if (target.length > MAX_TARGET) return send(res, 414, 'request target too long\n');
  // Origin form only, in visible ASCII: it goes into the Location header as it is.
  if (!/^\/[\x21-\x7e]*$/.test(target)) return send(res, 400, 'malformed request target\n');
  const path = target.split('?', 1)[0]!;
  if (path.startsWith(CHALLENGE_PREFIX)) return challenge(req, res, path.slice(CHALLENGE_PREFIX.length), options);
  const port = options.httpsPort === null || options.httpsPort === 443 ? '' : `:${options.httpsPort}`;
  // 301 for a GET or HEAD; 308 keeps any other method as it was.
  const status = req.method === 'GET' || req.method === 'HEAD' ? 301 : 308;
  res.writeHead(status, { location: `https://${host}${port}${target}`, 'content-length': 0 }).end();
}

/** Challenge paths are answered here and never redirected: a CA follows redirects, and would only reach the registry. */
function challenge(req: IncomingMessage, res: ServerResponse, token: string, options: HttpChallengeOptions): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'method not allowed\n');
  }
  let keyAuthorization: string | null = null;
  try {
    keyAuthorization = TOKEN.test(token) ? options.keyAuthorization(token) : null;
  } catch {
    // Thrown in a request handler, it would end the process.
    return send(res, 500, 'challenge lookup failed\n');
  }
  if (keyAuthorization === null) return send(res, 404, 'no such challenge\n');
  res.setHeader('cache-control', 'no-store');
  send(res, 200, keyAuthorization);
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * The host of a Host header as it may go into a redirect (lower-cased, port dropped), or null: a
 * DNS name, a dotted-quad IPv4 address or a bracketed IPv6 address (no zone), with an optional port.
 */
export function canonicalHost(value: string): string | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::([0-9]{1,5}))?$/.exec(value);
  if (match === null) return null;
  const port = match[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return null;
  const host = match[1]!.toLowerCase();
  if (host.startsWith('[')) return isIPv6(host.slice(1, -1)) ? host : null;
  if (isIPv4(host)) return host;
  return HOST_NAME.test(host) && !NUMERIC_LABEL.test(host) ? host : null;
}
