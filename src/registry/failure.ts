// Why a request failed, typed: the kind is what metrics and code read, the detail is the words the
// access log shows (never a credential). Nothing decides by matching the words.

export const FAILURE_KINDS = [
  /** A fault of the gateway's own; answered 500. */
  'internal',
  /** Node's parser refused the request (bad framing, late or oversized headers). */
  'malformed-request',
  /** A path the gateway will not route (an escape the upstream could read differently). */
  'malformed-path',
  /** The connection closed before the end of the response, and the gateway did not cut it. */
  'connection-closed',
  /** Sign-in refused: no, malformed or wrong credentials, throttled, or verification overloaded. */
  'auth',
  /** Access refused by the access rules, or by the checks that hold without them (body type, name length). */
  'denied',
  /** A catalog cursor this gateway run did not seal. */
  'catalog-cursor',
  /** The client stopped sending its request body. */
  'client-timeout',
  /** The upstream could not be reached, or closed without answering. */
  'upstream-unavailable',
  'upstream-timeout',
  /** The upstream answered something the gateway cannot pass on. */
  'upstream-bad-response',
  /** The upstream's response broke off before its end. */
  'upstream-interrupted',
] as const;

export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface Failure {
  readonly kind: FailureKind;
  /** In words fit for the log. */
  readonly detail: string;
}

export function failure(kind: FailureKind, detail: string): Failure {
  return { kind, detail };
}
