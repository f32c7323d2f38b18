// Pure header passes for each direction. Input is Node's rawHeaders (name, value, name, value...)
// so duplicates and order survive; output is an object Node can write.

import { validateHeaderName, validateHeaderValue, type OutgoingHttpHeaders } from 'node:http';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { rewriteChallenge, rewriteLink, rewriteLocation, type RewriteContext } from './rewrite.js';
import { API_VERSION, API_VERSION_HEADER } from '../registry/answers.js';

// Where a client claims to come from or to have asked for: only the gateway may say that.
const CLAIMED_ORIGIN = new Set(['forwarded', 'x-real-ip', 'x-client-ip', 'client-ip', 'true-client-ip', 'x-cluster-client-ip', 'x-original-host', 'x-host']);

/**
 * Request headers the client must not be able to set for the upstream. Authorization passes only
 * where the registry signs users in itself (`credentials`).
 */
function isClientControlled(lowerName: string, credentials: boolean): boolean {
  // Some servers read `X_Forwarded_Host` as `X-Forwarded-Host` (CGI-style variable names).
  const name = lowerName.replaceAll('_', '-');
  return (
    (name === 'authorization' && !credentials) ||
    name === 'host' ||
    CLAIMED_ORIGIN.has(name) ||
    name.startsWith('x-forwarded-') ||
    // We answer `Expect: 100-continue` ourselves, after authentication.
    name === 'expect'
  );
}

function append(headers: OutgoingHttpHeaders, name: string, value: string): void {
  const existing = headers[name];
  if (existing === undefined) headers[name] = value;
  else if (Array.isArray(existing)) existing.push(value);
  else headers[name] = [String(existing), value];
}

export interface ForwardedFor {
  /** The client's address as the socket saw it. */
  readonly clientAddress: string;
  /** `host[:port]` the registry should build its URLs with. */
  readonly host: string;
  /** Pass the client's Authorization header on: the registry signs users in itself (`--auth upstream`). */
  readonly credentials?: boolean;
}

/**
 * Headers to send upstream: the client's own, less hop-by-hop, credentials and any Host or
 * forwarding headers it sent, plus exactly one set of our own. `named` is what the client's
 * Connection headers list, for a caller that needs it too (see connectionTokens).
 */
export function buildUpstreamRequestHeaders(
  rawHeaders: readonly string[],
  forwarded: ForwardedFor,
  named: ReadonlySet<string> = connectionTokens(rawHeaders),
): OutgoingHttpHeaders {
  // The host the registry should believe it is reached at, whatever the client put in Host.
  const headers: OutgoingHttpHeaders = { host: forwarded.host };
  let chunked = false;
  const credentials = forwarded.credentials === true;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'transfer-encoding') chunked = true;
    if (isHopByHop(name, named) || isClientControlled(name, credentials)) continue;
    append(headers, name, rawHeaders[i + 1]!);
  }
  // Node frames the upstream body itself; say so explicitly when the client streamed one
  // without a length, so no method escapes chunked framing.
  if (chunked) headers['transfer-encoding'] = 'chunked';
  headers['x-forwarded-for'] = forwarded.clientAddress;
  headers['x-forwarded-proto'] = 'https';
  headers['x-forwarded-host'] = forwarded.host;
  return headers;
}

export interface ResponseContext extends RewriteContext {
  readonly status: number;
  /**
   * The gateway's own challenge (its sign-in scheme's), replacing whatever realm or token server
   * the upstream names. Null where the registry signs users in itself: its challenges then pass
   * with a realm on its own origin moved onto `realmOrigin`, and its cookies stay on the gateway's
   * host (see withoutCookieDomain).
   */
  readonly challenge: string | null;
  /** Where such a realm moves: the public origin as this client reaches it (absolute, as a realm must be). */
  readonly realmOrigin?: string | undefined;
  /** Whether the request was for the registry API (`/v2/...`). */
  readonly registryApi: boolean;
}

/** Headers to send the client: the upstream's, less hop-by-hop, with its self-references rewritten. */
export function buildClientResponseHeaders(rawHeaders: readonly string[], ctx: ResponseContext): OutgoingHttpHeaders {
  const named = connectionTokens(rawHeaders);
  const headers: OutgoingHttpHeaders = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (isHopByHop(name, named)) continue;
    if (name === 'www-authenticate') {
      if (ctx.challenge !== null) headers[name] = ctx.challenge;
      else append(headers, name, ctx.realmOrigin === undefined ? value : rewriteChallenge(value, ctx, ctx.realmOrigin));
    } else if (name === 'set-cookie' && ctx.challenge === null) {
      append(headers, name, withoutCookieDomain(value));
    } else if (name === 'location') {
      append(headers, name, rewriteLocation(value, ctx, ctx.status));
    } else if (name === 'link') {
      append(headers, name, rewriteLink(value, ctx));
    } else {
      append(headers, name, value);
    }
  }
  if (ctx.registryApi) headers[API_VERSION_HEADER] = API_VERSION;
  return headers;
}

/**
 * A Set-Cookie without its Domain attribute. The registry's sign-in (a Harbor-like front) may set
 * a session cookie for its own domain; without Domain the client keeps it for the very host it
 * asked, the gateway's, and sends it nowhere else: a cookie for a parent domain would go to every
 * sibling host, and one for the registry's internal name would never come back at all.
 */
export function withoutCookieDomain(value: string): string {
  const parts = value.split(';');
  const kept = parts.filter((part, i) => i === 0 || !/^[ \t]*domain[ \t]*(?:=|$)/i.test(part));
  return kept.length === parts.length ? value : kept.join(';');
}

/**
 * The scheme of a WWW-Authenticate value (Basic, Bearer), and nothing else of it: its parameters
 * may name an internal address (a token server's realm). Null when it names none.
 */
export function challengeScheme(value: string | readonly string[] | undefined): string | null {
  const first = Array.isArray(value) ? value[0] : value;
  return /^\s*([A-Za-z][A-Za-z0-9_-]{0,31})(?:\s|$)/.exec(typeof first === 'string' ? first : '')?.[1] ?? null;
}

/**
 * The first header Node would refuse to write (a CR, LF, NUL or other control byte in it), or null.
 * Checked before any of a response head is set, so a refused one leaves nothing half-written.
 */
export function unwritableHeader(headers: OutgoingHttpHeaders): string | null {
  for (const [name, value] of Object.entries(headers)) {
    try {
      validateHeaderName(name);
      for (const one of Array.isArray(value) ? value : [value]) validateHeaderValue(name, String(one));
    } catch {
      return name;
    }
  }
  return null;
}
