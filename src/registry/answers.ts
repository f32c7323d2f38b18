// Answers the gateway writes itself, in the registry's own error format so clients print them.

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** The distribution API version header every registry answer carries. */
export const API_VERSION_HEADER = 'docker-distribution-api-version';
export const API_VERSION = 'registry/2.0';

/**
 * The error codes of the distribution API the gateway answers with itself, each with the statuses
 * it goes with (as the registry's errcode registers each code with its status) and when. docs/
 * error-codes.md lists the same; a test keeps the two and the code's uses in step.
 */
export const REGISTRY_ERRORS = {
  UNAUTHORIZED: { statuses: [401], when: 'no, malformed or wrong credentials; a bearer token refused or lacking the scope; a refresh token no longer good' },
  DENIED: { statuses: [403], when: 'the access rules do not grant the action' },
  NAME_INVALID: { statuses: [400], when: 'a repository name longer than the registry accepts' },
  TOOMANYREQUESTS: { statuses: [429], when: 'too many failed logins for one user from one address' },
  UNSUPPORTED: { statuses: [400, 405, 408, 413, 415, 431], when: 'a request the gateway will not pass on: malformed, too slow, a form-like body, a stale catalog link; a token request that is not one' },
  UNAVAILABLE: { statuses: [500, 502, 503, 504], when: 'the upstream down, silent or unusable; too many logins or connections at once; a fault of the gateway' },
} as const satisfies Record<string, { statuses: readonly number[]; when: string }>;

export type RegistryErrorCode = keyof typeof REGISTRY_ERRORS;

export function registryErrorBody(code: RegistryErrorCode, message: string): string {
  return JSON.stringify({ errors: [{ code, message, detail: null }] });
}

export function sendJson(res: ServerResponse, status: number, body: string, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const all: OutgoingHttpHeaders = {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-content-type-options': 'nosniff',
  };
  // Through setHeader rather than writeHead's argument, so the access log can read the length back.
  for (const [name, value] of Object.entries(all)) if (value !== undefined) res.setHeader(name, value);
  res.writeHead(status);
  res.end(body);
}

export function sendRegistryError(
  res: ServerResponse,
  status: number,
  code: RegistryErrorCode,
  message: string,
  headers: OutgoingHttpHeaders = {},
): void {
  sendJson(res, status, registryErrorBody(code, message), { [API_VERSION_HEADER]: API_VERSION, ...headers });
}
