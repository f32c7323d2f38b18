// What the web UI's pages show, as plain data: gathered from the registry (web/registry-view.ts)
// and the gateway's record of events, rendered by web/pages.ts. Every string here is untrusted
// text (repository names, tags, labels, user names): pages escape all of it.

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string | null;
  /** Config plus layers of this platform's manifest; null when it could not be read. */
  readonly size: number | null;
}

export interface TagView {
  readonly tag: string;
  /** The manifest's (or index's) digest. */
  readonly digest: string;
  readonly mediaType: string;
  /** Config plus layers (for an index: of the largest platform; see platforms); null when unknown. */
  readonly size: number | null;
  /** The image config's `created`, ISO 8601; null when the manifest has none or it could not be read. */
  readonly created: string | null;
  /** The platforms of a multi-arch index; empty for a single manifest. */
  readonly platforms: readonly Platform[];
  /** From the gateway's record: who pushed this tag (or digest) last, and when; null when not recorded. */
  readonly pushedBy: string | null;
  readonly pushedAt: string | null;
}

/** A page of a longer list: `next` is the cursor of the following page, or null on the last. */
export interface ListPage<T> {
  readonly items: readonly T[];
  readonly next: string | null;
}
