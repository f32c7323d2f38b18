// One spelling per registry path. The gateway routes (and will authorize) on the path it then
// forwards, so a path the upstream could read differently from us (an encoded slash, a dot
// segment, a backslash) is refused, and harmless escapes (%61 for "a") are decoded before either
// looks at it.

export type CanonicalPath = { ok: true; path: string } | { ok: false; reason: string };

// RFC 3986 pchar without "%" (handled as escapes): unreserved, sub-delims, ":" and "@".
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;
const RAW = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
const ESCAPE = /%([0-9A-Fa-f]{2})?/g;

/** The canonical form of a request path (no query), or why it has none. */
export function canonicalPath(rawPath: string): CanonicalPath {
  if (!rawPath.startsWith('/')) return { ok: false, reason: 'the path must start with /' };
  if (!RAW.test(rawPath)) return { ok: false, reason: 'the path holds a character outside RFC 3986 (say, a backslash)' };
  let bad: string | null = null;
  // Nearly every path has no escape at all: no need to look for one.
  const decoded = !rawPath.includes('%') ? rawPath : rawPath.replace(ESCAPE, (escape, hex: string | undefined) => {
    if (hex === undefined) {
      bad ??= 'a % that starts no escape';
      return escape;
    }
    const char = String.fromCharCode(parseInt(hex, 16));
    if (PCHAR.test(char)) return char;
    bad ??= `the escape ${escape.toUpperCase()} (an encoded "/", "\\", "%", control or non-ASCII byte)`;
    return escape;
  });
  if (bad !== null) return { ok: false, reason: bad };
  const segments = decoded.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '.' || segment === '..') return { ok: false, reason: 'the path has a "." or ".." segment' };
    if (segment === '' && i < segments.length - 1) return { ok: false, reason: 'the path has an empty segment ("//")' };
  }
  return { ok: true, path: decoded };
}
