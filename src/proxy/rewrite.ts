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
  const publicHost = ctx.publicOrigin.slice(ctx.publicOrigin.indexOf('//') + 2).toLowerCase();
  const requested = host.toLowerCase().replace(/:443$/, '');
  return requested === publicHost ? ctx : { ...ctx, publicOrigin: null };
}

export function rewriteLocation(value: string, ctx: RewriteContext, status: number): string {
  return rewriteUrl(value, ctx, status >= 300 && status < 400);
}

/** Rewrite every `<URI>` of a Link header value (RFC 8288), keeping parameters as they are. */
export function rewriteLink(value: string, ctx: RewriteContext): string {
  return value.replace(/<([^>]*)>/g, (_all, uri: string) => `<${rewriteUrl(uri, ctx, false)}>`);
}
