// Which headers must not cross the gateway, in either direction (RFC 9110 §7.6.1).

const ALWAYS_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
]);

// Headers a Connection list may not strip. Without its Content-Length a request body would go
// upstream unframed (Node writes a GET's body raw), where it would read as a request of its own;
// Host is always the gateway's own.
const NEVER_CONNECTION_OPTION = new Set(['content-length', 'host']);

/** The lower-cased names listed in every Connection header (`Connection: close, X-Foo`). */
export function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && !NEVER_CONNECTION_OPTION.has(name)) tokens.add(name);
    }
  }
  return tokens;
}

export function isHopByHop(lowerName: string, named: ReadonlySet<string>): boolean {
  return ALWAYS_HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-') || named.has(lowerName);
}
