// Repository patterns of the access file: "*" stands for any run of characters, "/" included
// (so "team-a/*" covers team-a/app and team-a/tools/ci), and "${user}" for the name of the user
// asking, so "${user}/*" gives everyone a namespace of their own. Everything else is literal.
// Patterns become regular expressions once, at load; "${user}" ones once per user.

const USER_PLACEHOLDER = '${user}';
// A user name stands in for ${user} only when it is one component of a repository name: "a/b"
// would get a namespace inside someone else's ("a/b/*"), and "Alice" one no repository can have.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const NEVER = /(?!)/;
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

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/** The body of a regular expression for a pattern, with `user` standing in for ${user}. */
function toRegExpSource(source: string, user: string | null): string {
  return source
    .split(USER_PLACEHOLDER)
    .map((part) => part.split('*').map(escapeRegExp).join('.*'))
    .join(user === null ? '' : escapeRegExp(user));
}

/** Compiles a pattern patternProblem() accepted. */
export function compilePattern(source: string): RepositoryPattern {
  if (!source.includes(USER_PLACEHOLDER)) {
    const re = new RegExp(`^${toRegExpSource(source, null)}$`);
    return { source, matches: (repository) => re.test(repository) };
  }
  // A user name goes in literally: "*" or "." in a name must not act as a wildcard.
  const perUser = new Map<string, RegExp>();
  return {
    source,
    matches(repository, user) {
      let re = perUser.get(user);
      if (re === undefined) {
        re = PATH_COMPONENT.test(user) ? new RegExp(`^${toRegExpSource(source, user)}$`) : NEVER;
        // Bounded by the users of the htpasswd file, but a reload can rename them all.
        if (perUser.size >= 4096) perUser.clear();
        perUser.set(user, re);
      }
      return re.test(repository);
    },
  };
}
