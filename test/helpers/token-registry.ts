// The real distribution registry with token auth, and what a Harbor-like installation puts beside
// it: a token issuer (node:http, signing ES256 JWTs with node:crypto under a certificate the
// registry's `rootcertbundle` trusts) and a front on one origin that routes /token to the issuer
// and everything else to the registry (the stand-in for Harbor's core and nginx). The registry
// and its token checking are real; its realm is on the front's origin, as Harbor's is on its own.
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTestPki } from './pki.js';
import { startRegistry, type TestRegistry } from './registry.js';

/** What the registry's token auth is configured with (test/helpers/registry.ts). */
const SERVICE = 'registry';
const ISSUER = 'test';
const TOKEN_SECONDS = 300;

/** A scope's resource as the registry asks for it, and what the issuer granted on it. */
export interface GrantedAccess {
  readonly type: string;
  readonly name: string;
  readonly actions: string[];
}

/** One request the issuer answered, for tests that look at the flow (never the password). */
export interface TokenRequest {
  readonly method: string;
  /** The Basic user name, when the right password came with it; null: anonymous. */
  readonly user: string | null;
  readonly scopes: readonly string[];
  readonly status: number;
}

export interface TokenRegistry {
  /** `http://127.0.0.1:PORT`: the front, /token to the issuer and everything else to the registry. */
  readonly origin: string;
  /** The registry behind the front (its own url answers without the issuer). */
  readonly registry: TestRegistry;
  /** The realm the registry challenges with: `${origin}/token`. */
  readonly realm: string;
  /** The registry's service name (the tokens' audience). */
  readonly service: string;
  /** The requests the issuer answered so far. */
  tokenRequests(): readonly TokenRequest[];
  stop(): Promise<void>;
}

/**
 * Starts a token-auth registry behind a front on a free loopback port. `users` maps user names to
 * passwords: a user with the right Basic password is granted every action the scopes ask for; a
 * wrong password gets 401; a request without credentials gets a token granting nothing.
 */
export async function startTokenRegistry(dir: string, users: Record<string, string>): Promise<TokenRegistry> {
  // The signing certificate, under a CA that goes into the registry's rootcertbundle.
  const pki = await makeTestPki(join(dir, 'token-pki'), { hosts: ['token-issuer.test'], ips: [] });
  const key = createPrivateKey(await readFile(pki.serverKey));
  const x5c = [await readFile(pki.serverLeafCert, 'utf8'), pki.caPem].map((pem) => new X509Certificate(pem).raw.toString('base64'));

  const requests: TokenRequest[] = [];
  let registry: TestRegistry | null = null;
  const front = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/token') {
      issue(req, res, users, key, x5c, requests);
      return;
    }
    if (registry === null) {
      res.writeHead(503).end();
      return;
    }
    relay(req, res, registry.port);
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  const realm = `${origin}/token`;
  const closeFront = () =>
    new Promise<void>((resolve) => {
      front.closeAllConnections();
      front.close(() => resolve());
    });
  try {
    registry = await startRegistry({ tokenAuth: { realm, rootCertBundle: pki.caCert }, parentDir: dir });
  } catch (err) {
    await closeFront();
    throw err;
  }
  const running = registry;
  let stopped = false;
  return {
    origin,
    registry: running,
    realm,
    service: SERVICE,
    tokenRequests: () => [...requests],
    async stop() {
      if (stopped) return;
      stopped = true;
      await closeFront();
      await running.stop();
    },
  };
}

/** Answers a token request as distribution's token specification says. */
function issue(req: http.IncomingMessage, res: http.ServerResponse, users: Record<string, string>, key: KeyObject, x5c: string[], requests: TokenRequest[]): void {
  const url = new URL(req.url ?? '/', 'http://issuer');
  // `scope` may come several times, each possibly holding several space-separated scopes.
  const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
  const done = (status: number, user: string | null, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
    requests.push({ method: req.method ?? 'GET', user, scopes, status });
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
  };
  req.resume();
  if (req.method !== 'GET') {
    done(405, null, { errors: [{ code: 'UNSUPPORTED', message: 'this issuer answers GET only' }] }, { allow: 'GET' });
    return;
  }
  const credentials = basicCredentials(req.headers.authorization);
  if (credentials !== null && users[credentials.user] !== credentials.password) {
    done(401, null, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }, { 'www-authenticate': 'Basic realm="token"' });
    return;
  }
  const user = credentials?.user ?? null;
  // A signed-in user gets what it asks for; anonymous nothing (the registry then answers 401).
  const access: GrantedAccess[] = user === null ? [] : scopes.map(parseScope).filter((a): a is GrantedAccess => a !== null);
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt(
    { typ: 'JWT', alg: 'ES256', x5c },
    { iss: ISSUER, sub: user ?? '', aud: SERVICE, exp: now + TOKEN_SECONDS, nbf: now - 10, iat: now, jti: randomBytes(12).toString('hex'), access },
    key,
  );
  done(200, user, { token, access_token: token, expires_in: TOKEN_SECONDS, issued_at: new Date(now * 1000).toISOString() });
}

/** `repository:team/app:pull,push` (the name may hold a port's colon: the actions are after the last one). */
function parseScope(scope: string): GrantedAccess | null {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return null;
  const actions = scope.slice(last + 1).split(',').filter((a) => a !== '');
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

function basicCredentials(header: string | undefined): { user: string; password: string } | null {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (match === null) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** A compact JWS: ES256 wants the raw r||s signature (IEEE P1363), not DER. */
function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url(signature)}`;
}

// Hop-by-hop headers (RFC 9110 section 7.6.1) a proxy does not pass on.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate']);

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

/** Streams one request to the registry and its answer back, as a front proxy does (Host kept). */
function relay(req: http.IncomingMessage, res: http.ServerResponse, port: number): void {
  const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent: false }, (upstreamRes) => {
    res.writeHead(upstreamRes.statusCode ?? 502, endToEnd(upstreamRes.headers));
    upstreamRes.pipe(res);
    upstreamRes.once('error', () => res.destroy());
  });
  upstream.once('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
  req.once('error', () => upstream.destroy());
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}
