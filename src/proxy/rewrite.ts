// Pure rewriting of the URLs the upstream registry tells clients about.
//
// The registry builds absolute URLs from whatever origin it believes it has (its own address,
// its `http.host` setting, or the X-Forwarded-* headers we send). Clients must only ever see the
// public origin: containerd, for one, drops credentials when a Location changes host or scheme.

export interface RewriteContext {
  /** `https://registry.example.com`, or null to make rewritten URLs relative. */
  readonly publicOrigin: string | null;
  /** Origins that are certainly the upstream's own (its address, what we forwarded as the host). */
  readonly upstreamOrigins: ReadonlySet<string>;
}

const ABSOLUTE = /^([a-z][a-z0-9+.-]*:)?\/\/([^/?#]*)(.*)$/is;

function isRegistryApiPath(pathAndQuery: string): boolean {
  return pathAndQuery === '/v2' || pathAndQuery.startsWith('/v2/') || pathAndQuery.startsWith('/v2?');
}

function originOf(value: string): string | null {
  try {
    return new URL(value).origin.toLowerCase();
  } catch {
    return null;
  }
}

/**
 * Rewrite one URL the upstream reported. Relative URLs are kept. An absolute URL on a known upstream
 * origin is moved onto the public origin whatever its path: the internal address must not leak. One
 * on another origin is moved too when it names a registry API path (`/v2/...`) and the response is
 * not a redirect (the registry may be configured with an `http.host` we cannot know). A redirect
 * elsewhere (a storage backend's presigned URL) passes byte for byte. The path and query are kept
 * byte for byte: the registry signs its `_state` parameter.
 */
export function rewriteUrl(value: string, ctx: RewriteContext, isRedirect: boolean): string {
  const match = ABSOLUTE.exec(value);
  if (!match) return value;
  const rest = match[3] ?? '';
  const origin = originOf(match[1] ? value : `http:${value}`);
  if (origin === null) return value;
  if (!ctx.upstreamOrigins.has(origin) && (isRedirect || !isRegistryApiPath(rest))) return value;
  return (ctx.publicOrigin ?? '') + (rest === '' ? '/' : rest);
}

/**
 * The context for one request. A client that reached the gateway by another name than the public
 * URL's (a container on the compose network using `https://gateway:8443`, an address) gets
 * relative URLs, which it resolves against the origin it used: the public name may not even
 * resolve where it runs. `host` is the request's Host header, already checked to be one valid
 * host[:port].
 */
export function rewriteForHost(ctx: RewriteContext, host: string | undefined): RewriteContext {
  if (ctx.publicOrigin === null || host === undefined) return ctx;
  // A URL's origin is lower case already, and leaves out the default port.
  const requested = host.toLowerCase().replace(/:443$/, '');
  return ctx.publicOrigin.slice(ctx.publicOrigin.indexOf('//') + 2) === requested ? ctx : { ...ctx, publicOrigin: null };
}

export function rewriteLocation(value: string, ctx: RewriteContext, status: number): string {
  return rewriteUrl(value, ctx, status >= 300 && status < 400);
}

/** Rewrite every `<URI>` of a Link header value (RFC 8288), keeping parameters as they are. */
export function rewriteLink(value: string, ctx: RewriteContext): string {
  return value.replace(/<([^>]*)>/g, (_all, uri: string) => `<${rewriteUrl(uri, ctx, false)}>`);
}

// In a WWW-Authenticate value: a quoted string standing on its own (kept as it is, so a `realm=`
// inside another parameter's value is never taken for one), or a realm parameter and its value.
const CHALLENGE_PART = /("(?:[^"\\]|\\.)*")|((?:^|[\s,])realm[ \t]*=[ \t]*)("(?:[^"\\]|\\.)*"|[^\s,"]+)/gi;

/**
 * The upstream's challenge (RFC 9110 section 11.6.1), with its scheme and parameters kept and
 * each `realm` on one of the upstream's own origins moved onto `realmOrigin` (path and query
 * kept), so the client fetches its token through the gateway. A realm elsewhere (an external
 * token server) or not a URL at all (Basic's realm is a name) passes untouched. `realmOrigin` is
 * absolute: a client resolves no relative realm.
 */
export function rewriteChallenge(value: string, ctx: RewriteContext, realmOrigin: string): string {
  return value.replace(CHALLENGE_PART, (all, quoted: string | undefined, lead: string, realm: string) => {
    if (quoted !== undefined) return all;
    const url = realm.startsWith('"') ? realm.slice(1, -1).replace(/\\(.)/g, '$1') : realm;
    const moved = moveRealm(url, ctx, realmOrigin);
    return moved === null ? all : `${lead}"${moved.replace(/["\\]/g, '\\$&')}"`;
  });
}

/** The realm on `realmOrigin`, or null when it stays as it is. */
function moveRealm(url: string, ctx: RewriteContext, realmOrigin: string): string | null {
  const match = ABSOLUTE.exec(url);
  if (!match?.[1]) return null; // relative, scheme-relative or no URL: not the upstream's origin
  const origin = originOf(url);
  if (origin === null || !ctx.upstreamOrigins.has(origin)) return null;
  const rest = match[3] ?? '';
  return realmOrigin + (rest === '' ? '/' : rest);
}
