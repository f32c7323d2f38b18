// Repository patterns of the access file: "*" stands for any run of characters, "/" included
// (so "team-a/*" covers team-a/app and team-a/tools/ci), and "${user}" for the name of the user
// asking, so "${user}/*" gives everyone a namespace of their own. Everything else is literal.
// Patterns are compiled once, at load; "${user}" ones once per user. Matching never backtracks:
// its work is linear in the length of the name for every pattern.

const USER_PLACEHOLDER = '${user}';
// A user name stands in for ${user} only when it is one component of a repository name: "a/b"
// would get a namespace inside someone else's ("a/b/*"), and "Alice" one no repository can have.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// What a repository name may hold (lower case, digits, separators), plus "*" and "${user}".
const PATTERN_TEXT = /^(?:[a-z0-9._/*-]|\$\{user\})+$/;

export interface RepositoryPattern {
  /** As written in the file. */
  readonly source: string;
  /** Whether the pattern matches `repository` when `user` asks. */
  matches(repository: string, user: string): boolean;
}

/** Why a pattern cannot be used, or null when it can. */
export function patternProblem(source: string): string | null {
  if (source === '') return 'an empty repository pattern matches nothing; use "*" for every repository';
  const placeholder = /\$\{([^}]*)\}/.exec(source);
  if (placeholder && placeholder[0] !== USER_PLACEHOLDER) {
    return `unknown placeholder ${placeholder[0]} in ${JSON.stringify(source)}; the only one is \${user}`;
  }
  if (!PATTERN_TEXT.test(source)) {
    if (/[A-Z]/.test(source)) return `${JSON.stringify(source)} has upper-case letters; repository names are lower case, so it would never match`;
    return `${JSON.stringify(source)} holds characters no repository name has; use lower-case letters, digits, "._-/", "*" and \${user}`;
  }
  if (source.startsWith('/') || source.endsWith('/')) return `${JSON.stringify(source)} starts or ends with "/"; repository names never do (write "team-a/*", not "/team-a/")`;
  return null;
}

/**
 * A pattern with its user filled in, as the literal text between its stars: "a*b*c" is
 * ["a", "b", "c"], "team-*" is ["team-", ""], a pattern without a star is one piece. The user's
 * name is spliced into a piece as text, so a "*" in it could never act as a wildcard (and
 * PATH_COMPONENT keeps such names out anyway).
 */
export interface Glob {
  readonly pieces: readonly string[];
  /** KMP failure tables of the middle pieces (all but the first and last), built once. */
  readonly tables: readonly Int32Array[];
}

/** Counts the character comparisons of matches, so tests can bound them without a clock. */
export interface MatchMeter {
  steps: number;
}

export function compileGlob(source: string, user: string | null): Glob {
  const pieces: string[] = [''];
  source.split(USER_PLACEHOLDER).forEach((part, i) => {
    if (i > 0) pieces[pieces.length - 1] += user ?? '';
    const [head, ...rest] = part.split('*');
    pieces[pieces.length - 1] += head!;
    pieces.push(...rest);
  });
  return { pieces, tables: pieces.slice(1, -1).map(failureTable) };
}

/**
 * Whether the glob matches the whole name: the first piece is a prefix, the last a suffix, and
 * each middle piece occurs, in order, between them. Taking the leftmost occurrence of each middle
 * piece is never wrong (it leaves the most room for the rest), so there is nothing to backtrack:
 * with KMP each name character is looked at a bounded number of times, and the work is linear in
 * the length of the name plus the pattern, whatever the pattern. A regular expression with ".*"
 * per star backtracks instead: three stars on a 2 KB name took cubic time.
 */
export function matchGlob(glob: Glob, name: string, meter?: MatchMeter): boolean {
  const { pieces } = glob;
  const first = pieces[0]!;
  if (pieces.length === 1) {
    if (meter) meter.steps += Math.min(first.length, name.length) + 1;
    return name === first;
  }
  const last = pieces[pieces.length - 1]!;
  if (meter) meter.steps += first.length + last.length + 1;
  if (name.length < first.length + last.length || !name.startsWith(first) || !name.endsWith(last)) return false;
  let from = first.length;
  const end = name.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const at = indexOfWithin(name, pieces[i]!, glob.tables[i - 1]!, from, end, meter);
    if (at === -1) return false;
    from = at + pieces[i]!.length;
  }
  return true;
}

/** KMP failure table: for each prefix of the piece, the length of its longest proper border. */
function failureTable(piece: string): Int32Array {
  const table = new Int32Array(piece.length);
  let k = 0;
  for (let i = 1; i < piece.length; i++) {
    while (k > 0 && piece[i] !== piece[k]) k = table[k - 1]!;
    if (piece[i] === piece[k]) k++;
    table[i] = k;
  }
  return table;
}

/** The first index >= from where the piece occurs wholly before end, or -1 (Knuth-Morris-Pratt). */
function indexOfWithin(text: string, piece: string, table: Int32Array, from: number, end: number, meter?: MatchMeter): number {
  if (piece.length === 0) return from;
  let k = 0;
  let steps = 0;
  for (let i = from; i < end; i++) {
    // Each fallback undoes at least one earlier advance of k: at most 2 (end - from) steps in all.
    while (k > 0 && text[i] !== piece[k]) {
      k = table[k - 1]!;
      steps++;
    }
    steps++;
    if (text[i] === piece[k]) k++;
    if (k === piece.length) {
      if (meter) meter.steps += steps;
      return i - piece.length + 1;
    }
  }
  if (meter) meter.steps += steps;
  return -1;
}

/** Compiles a pattern patternProblem() accepted. */
export function compilePattern(source: string): RepositoryPattern {
  if (!source.includes(USER_PLACEHOLDER)) {
    const glob = compileGlob(source, null);
    return { source, matches: (repository) => matchGlob(glob, repository) };
  }
  // A user name goes in literally: "*" or "." in a name must not act as a wildcard.
  const perUser = new Map<string, Glob | null>();
  return {
    source,
    matches(repository, user) {
      let glob = perUser.get(user);
      if (glob === undefined) {
        glob = PATH_COMPONENT.test(user) ? compileGlob(source, user) : null;
        // Bounded by the users of the htpasswd file, but a reload can rename them all.
        if (perUser.size >= 4096) perUser.clear();
        perUser.set(user, glob);
      }
      return glob !== null && matchGlob(glob, repository);
    },
  };
}
