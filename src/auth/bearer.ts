// The token of a `Bearer` Authorization header (RFC 6750 section 2.1).

// A b64token, after the scheme name (any case) and one or more spaces.
const BEARER = /^[ \t]*bearer +([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i;

/** The token of a Bearer credential; null for any other header, or one longer than `maxChars`. */
export function bearerToken(header: string | undefined, maxChars = 16 * 1024): string | null {
  if (typeof header !== 'string' || header.length > maxChars) return null;
  const match = BEARER.exec(header);
  return match === null ? null : match[1]!;
}
