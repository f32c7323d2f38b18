// Editing the text of an htpasswd file one user at a time. Everything else (comments, blank
// lines, order, lines the gateway cannot use, line endings, a byte order mark) stays exactly as
// it was, so an edit never surprises whoever maintains the file by hand.
//
// Lines are recognised the way parseHtpasswd reads them: trimmed of ASCII whitespace, '#' starts
// a comment, and the user name ends at the first ':'.

/** The same ASCII-only trim as htpasswd.ts (Apache trims with C isspace()). */
const EDGE_SPACE = /^[ \t\v\f\r]+|[ \t\v\f\r]+$/g;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Apache's htpasswd refuses longer names ("username too long (> 255)"). */
const MAX_USER_BYTES = 255;

interface Line {
  text: string;
  /** '\n', '\r\n', or '' for a last line without one. */
  eol: string;
}

interface Split {
  bom: string;
  lines: Line[];
}

function splitLines(text: string): Split {
  const bom = text.startsWith('\uFEFF') ? '\uFEFF' : '';
  const parts = text.slice(bom.length).split(/(\r?\n)/);
  const lines: Line[] = [];
  for (let i = 0; i < parts.length; i += 2) lines.push({ text: parts[i]!, eol: parts[i + 1] ?? '' });
  // After a final newline split() leaves an empty piece: that is the end of the file, not a line.
  if (lines.at(-1)?.text === '' && lines.at(-1)?.eol === '') lines.pop();
  return { bom, lines };
}

function joinLines({ bom, lines }: Split): string {
  return bom + lines.map((l) => l.text + l.eol).join('');
}

/** The user an entry line is for; null for comments, blank lines and lines with no name. */
function lineUser(text: string): string | null {
  const t = text.replace(EDGE_SPACE, '');
  if (t === '' || t.startsWith('#')) return null;
  const colon = t.indexOf(':');
  return colon > 0 ? t.slice(0, colon) : null;
}

/** The file's own line ending (its first one), so new lines match the old. */
function fileEol(lines: readonly Line[]): string {
  return lines.find((l) => l.eol !== '')?.eol ?? '\n';
}

function assertEntryParts(user: string, hash: string): void {
  // Guards the file's structure; name rules for people are validateUserName's job.
  if (user === '' || /[:\r\n]/.test(user) || /[\r\n]/.test(hash)) {
    throw new TypeError('an htpasswd entry needs a non-empty user without ":" or line breaks, and a hash on one line');
  }
}

/**
 * Sets the user's hash: replaces the user's line where it is, or appends one. Later lines for the
 * same user are dropped, since a duplicate makes the file unusable for the gateway. The result
 * always ends with a newline.
 */
export function upsertUser(text: string, user: string, hash: string): string {
  assertEntryParts(user, hash);
  const split = splitLines(text);
  const eol = fileEol(split.lines);
  const entry = `${user}:${hash}`;
  const lines: Line[] = [];
  let placed = false;
  for (const line of split.lines) {
    if (lineUser(line.text) !== user) lines.push(line);
    else if (!placed) {
      lines.push({ text: entry, eol: line.eol });
      placed = true;
    }
  }
  if (!placed) lines.push({ text: entry, eol });
  for (const line of lines) if (line.eol === '') line.eol = eol;
  return joinLines({ bom: split.bom, lines });
}

/** Removes every line of the user; the text is returned unchanged when there was none. */
export function removeUser(text: string, user: string): { text: string; removed: boolean } {
  const split = splitLines(text);
  const lines = split.lines.filter((l) => lineUser(l.text) !== user);
  if (lines.length === split.lines.length) return { text, removed: false };
  return { text: joinLines({ bom: split.bom, lines }), removed: true };
}

/**
 * Every user named in the file, in file order, once each. This includes users whose lines the
 * gateway cannot use (parseHtpasswd reports those), since they can still be updated or removed.
 */
export function listUsers(text: string): string[] {
  const users = new Set<string>();
  for (const line of splitLines(text).lines) {
    const user = lineUser(line.text);
    if (user !== null) users.add(user);
  }
  return [...users];
}

/** Why a name cannot be written to an htpasswd file, or null when it can. */
export function validateUserName(user: string): string | null {
  if (user === '') return 'the user name is empty';
  if (user.includes(':')) return 'the user name contains ":", which separates the name from the password';
  if (CONTROL.test(user)) return 'the user name contains control characters, so no client could send it';
  if (/^\s|\s$/u.test(user)) return 'the user name starts or ends with whitespace, which htpasswd readers trim or refuse';
  if (user.startsWith('#')) return 'the user name starts with "#", which would make its line a comment';
  if (Buffer.from(user, 'utf8').toString('utf8') !== user) return 'the user name is not valid Unicode (it holds a lone surrogate)';
  const bytes = Buffer.byteLength(user, 'utf8');
  if (bytes > MAX_USER_BYTES) return `the user name is ${bytes} bytes long; htpasswd allows at most ${MAX_USER_BYTES}`;
  return null;
}
