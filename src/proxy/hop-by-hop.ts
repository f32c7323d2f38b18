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

// Most requests carry no Connection header, or one saying only `keep-alive` or `close`.
const NO_TOKENS: ReadonlySet<string> = new Set();

/** The lower-cased names listed in every Connection header (`Connection: close, X-Foo`). */
export function connectionTokens(rawHeaders: readonly string[]): ReadonlySet<string> {
  let tokens: Set<string> | null = null;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && !NEVER_CONNECTION_OPTION.has(name)) (tokens ??= new Set()).add(name);
    }
  }
  return tokens ?? NO_TOKENS;
}

/**
 * Whether a Connection list names a header that is end-to-end by definition (`Connection:
 * accept`): the gateway then forwards less than the client sent, so the upstream's answer may
 * differ from the one a client sending the same headers without that list gets.
 */
export function namesEndToEnd(named: ReadonlySet<string>): boolean {
  for (const name of named) {
    if (name !== 'close' && !ALWAYS_HOP_BY_HOP.has(name) && !name.startsWith('proxy-')) return true;
  }
  return false;
}

export function isHopByHop(lowerName: string, named: ReadonlySet<string>): boolean {
  return ALWAYS_HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-') || named.has(lowerName);
}
