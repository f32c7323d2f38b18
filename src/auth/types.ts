// Shapes shared by the auth modules and their callers.

/** A password hash the gateway knows how to verify, recognised by a strict pattern. */
export type PasswordHash =
  | { readonly kind: 'bcrypt'; readonly cost: number; readonly hash: string }
  | { readonly kind: 'sha-crypt'; readonly digest: 'sha256' | 'sha512'; readonly rounds: number; readonly hash: string }
  | { readonly kind: 'apr1'; readonly hash: string }
  | { readonly kind: 'sha1'; readonly hash: string };

/** Users of one htpasswd file, by name. */
export type HtpasswdUsers = ReadonlyMap<string, PasswordHash>;

/** One line of an htpasswd file the gateway cannot use. Never carries the hash itself. */
export interface HtpasswdProblem {
  readonly file: string;
  readonly line: number;
  /** The user name on that line, when one could be read. */
  readonly user: string | null;
  readonly reason: string;
}

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export type AuthResult =
  | { readonly ok: true; readonly user: string; readonly cached: boolean }
  | { readonly ok: false; readonly reason: 'missing' | 'malformed' | 'mismatch'; readonly user: string | null };
