// Pure header passes for each direction. Input is Node's rawHeaders (name, value, name, value...)
// so duplicates and order survive; output is an object Node can write.

import type { OutgoingHttpHeaders } from 'node:http';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { basicChallenge, rewriteLink, rewriteLocation, type RewriteContext } from './rewrite.js';

export const API_VERSION_HEADER = 'docker-distribution-api-version';
export const API_VERSION = 'registry/2.0';

/** Request headers the client must not be able to set for the upstream. */
function isClientControlled(lowerName: string): boolean {
  return (
    lowerName === 'authorization' ||
    lowerName === 'forwarded' ||
    lowerName === 'x-real-ip' ||
    lowerName.startsWith('x-forwarded-') ||
    // We answer `Expect: 100-continue` ourselves, after authentication.
    lowerName === 'expect'
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
}

/**
 * Headers to send upstream: the client's own, less hop-by-hop, credentials and any forwarding
 * headers it sent, plus exactly one set of forwarding headers of our own.
 */
export function buildUpstreamRequestHeaders(rawHeaders: readonly string[], forwarded: ForwardedFor): OutgoingHttpHeaders {
  const named = connectionTokens(rawHeaders);
  const headers: OutgoingHttpHeaders = {};
  let chunked = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'transfer-encoding') chunked = true;
    if (isHopByHop(name, named) || isClientControlled(name)) continue;
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
  readonly realm: string;
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
      headers[name] = basicChallenge(ctx.realm);
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
