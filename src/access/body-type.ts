// Which request bodies may reach the registry. The registry reads its parameters ("mount" and
// "from" of a blob mount, "digest", "_state") with Go's FormValue, which also parses the body:
// application/x-www-form-urlencoded on POST, PUT and PATCH, multipart/form-data on any method.
// Go finds the media type with mime.ParseMediaType, which lowercases with full Unicode folding
// ("MULT\u0130PART" is "multipart": U+0130 folds to "i") and trims Unicode spaces, and reads the
// first of several Content-Type headers. Matching "a form" the way Go does would mean copying all
// of that; instead a body goes through only with no Content-Type or one that is plainly something
// else: printable ASCII, one header, and a media type from a short list every registry client
// sends. Anything else cannot be a form to the registry because it is never forwarded.

/** What is accepted, for the error message. */
export const ACCEPTED_BODY_TYPES = 'application/octet-stream, application/json or application/vnd.*';

// Blob data (docker, containerd, podman, skopeo, crane, oras, helm all send octet-stream or
// nothing), schema 1 manifests (application/json), and every manifest and index media type
// (application/vnd.docker.distribution.manifest.v2+json, ...v1+prettyjws, ...list.v2+json,
// application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json).
const ACCEPTED = new Set(['application/octet-stream', 'application/json']);
const VENDOR_TYPE = /^application\/vnd\.[a-z0-9][a-z0-9!#$&^_.+-]*$/;
// Space, tab and the visible ASCII characters: no byte that Go and Node could read differently.
const PRINTABLE_ASCII = /^[\t\x20-\x7e]*$/;

/**
 * Why a request body with these headers must not be forwarded, or null when it may. Call it for
 * requests that have a body; `rawHeaders` is Node's list (name, value, ...), whose values keep
 * every byte as one latin1 character.
 */
export function bodyTypeProblem(rawHeaders: readonly string[]): string | null {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'content-type') values.push(rawHeaders[i + 1]!);
  if (values.length === 0) return null;
  // Node keeps the first of several, as Go does; a second could still be read by something else.
  if (values.length > 1) return 'more than one Content-Type header';
  const value = values[0]!;
  if (!PRINTABLE_ASCII.test(value)) return 'a Content-Type header with bytes outside printable ASCII';
  if (trimTabsAndSpaces(value) === '') return null;
  const semicolon = value.indexOf(';');
  const mediaType = trimTabsAndSpaces(semicolon === -1 ? value : value.slice(0, semicolon)).toLowerCase();
  if (ACCEPTED.has(mediaType) || VENDOR_TYPE.test(mediaType)) return null;
  const shown = mediaType.length > 100 ? `${mediaType.slice(0, 100)}...` : mediaType;
  return `a Content-Type of ${JSON.stringify(shown)}`;
}

/** Without leading and trailing spaces and tabs; by index, since /[ \t]+$/ is quadratic on a long run of them. */
function trimTabsAndSpaces(text: string): string {
  const blank = (c: string | undefined) => c === ' ' || c === '\t';
  let start = 0;
  let end = text.length;
  while (start < end && blank(text[start])) start++;
  while (end > start && blank(text[end - 1])) end--;
  return text.slice(start, end);
}
