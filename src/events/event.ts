// What the gateway records of the requests it relays: every manifest push and delete, and every
// refusal, naming the user (which the registry's own notifications cannot, behind a proxy). The
// record (events/store.ts) keeps them across restarts; webhooks (events/webhooks.ts) send them on.

export type EventAction = 'push' | 'delete' | 'denied';
export const EVENT_ACTIONS: readonly EventAction[] = ['push', 'delete', 'denied'];

/** Where a change came from: a registry client on /v2/, or the web UI. */
export type EventVia = 'registry' | 'ui';

export interface GatewayEvent {
  /** Unique: 32 hex characters. */
  readonly id: string;
  /** ISO 8601, UTC, milliseconds. */
  readonly timestamp: string;
  readonly action: EventAction;
  /** The repository the request named; null for a refusal that named none (a sign-in, the catalog). */
  readonly repository: string | null;
  /** The tag a manifest was pushed or deleted by; null for a digest reference. */
  readonly tag: string | null;
  /** The manifest's digest (the registry's Docker-Content-Digest, or the reference itself). */
  readonly digest: string | null;
  readonly mediaType: string | null;
  /** The manifest's size in bytes. */
  readonly size: number | null;
  /**
   * Who: the signed-in user, '@anonymous' for a request without credentials, or for a refused
   * sign-in the user the credentials claimed; null when nothing named one.
   */
  readonly user: string | null;
  /** The client's address. */
  readonly address: string;
  readonly method: string;
  /** The request path, without the query. */
  readonly path: string;
  /** The status the client was answered. */
  readonly status: number;
  /** For a refusal: why, in words (never a credential); null otherwise. */
  readonly reason: string | null;
  readonly via: EventVia;
}
