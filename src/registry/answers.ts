// Answers the gateway writes itself, in the registry's own error format so clients print them.

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** The distribution API version header every registry answer carries. */
export const API_VERSION_HEADER = 'docker-distribution-api-version';
export const API_VERSION = 'registry/2.0';

/** Error codes of the distribution API that the gateway itself answers with. */
export type RegistryErrorCode = 'UNAUTHORIZED' | 'DENIED' | 'UNAVAILABLE' | 'TOOMANYREQUESTS' | 'NOTFOUND' | 'UNSUPPORTED';

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
