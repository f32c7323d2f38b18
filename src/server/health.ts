// Liveness and readiness, answered without authentication so orchestrators can probe them; and
// the one look at the upstream when the gateway starts.

import http from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AuthMode } from '../config/types.js';
import { challengeScheme } from '../proxy/headers.js';
import { createUpstream, upstreamRequestOptions, type Upstream } from '../proxy/upstream.js';
import { sendJson } from '../registry/answers.js';
import type { Logger } from './logger.js';

const READINESS_TIMEOUT_MS = 5_000;

export type Readiness = { ready: true } | { ready: false; reason: string };

/** What the upstream's API root (`GET /v2/`) said. */
export type UpstreamAnswer =
  | { kind: 'registry' }
  /** 401: the registry asks for a login of its own; `scheme` is its challenge's (Basic, Bearer), when it names one. */
  | { kind: 'own-login'; scheme: string | null }
  | { kind: 'status'; status: number }
  | { kind: 'unreachable'; code: string };

export interface UpstreamExpectations {
  /**
   * Whether the registry signs users in itself (`--auth upstream`), so that its 401 on /v2/ is how
   * it says it works. Not so with `--auth basic`: the gateway does authentication and never passes
   * credentials on, so a registry asking for its own login refuses every request.
   */
  readonly ownAuthExpected: boolean;
}

/** What the gateway expects of its upstream with `--auth basic`. */
export const GATEWAY_AUTH: UpstreamExpectations = { ownAuthExpected: false };

/** What the gateway expects of its upstream in a sign-in mode. */
export function expectationsFor(mode: AuthMode): UpstreamExpectations {
  return { ownAuthExpected: mode === 'upstream' };
}

/** Said by /readyz and by the start-up warning: the registry has its own auth section switched on. */
export function ownLoginReason(scheme: string | null): string {
  const challenge = scheme === null ? '' : `, challenge ${scheme}`;
  return `the registry asks for its own login (it answered /v2/ with 401${challenge}): turn off the auth section of its config; the gateway does authentication`;
}

/** One `GET /v2/`. `unref`: the probe does not keep the process alive (one nobody waits for). */
export function askUpstream(upstream: Upstream, timeoutMs = READINESS_TIMEOUT_MS, unref = false): Promise<UpstreamAnswer> {
  return new Promise((resolve) => {
    const req = http.request(upstreamRequestOptions(upstream, 'GET', '/v2/', { host: upstream.url.host }));
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    if (unref) req.once('socket', (socket) => socket.unref());
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      if (status === 200) resolve({ kind: 'registry' });
      else if (status === 401) resolve({ kind: 'own-login', scheme: challengeScheme(res.headers['www-authenticate']) });
      else resolve({ kind: 'status', status });
    });
    req.on('error', (err) => resolve({ kind: 'unreachable', code: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end();
  });
}

/** Whether an answer means ready. Anyone may ask /readyz: a reason names no internal address. */
export function readinessOf(answer: UpstreamAnswer, expected: UpstreamExpectations): Readiness {
  switch (answer.kind) {
    case 'registry':
      return { ready: true };
    case 'own-login':
      return expected.ownAuthExpected ? { ready: true } : { ready: false, reason: ownLoginReason(answer.scheme) };
    case 'status':
      return { ready: false, reason: `upstream registry answered /v2/ with ${answer.status}` };
    case 'unreachable':
      return { ready: false, reason: `upstream registry unreachable: ${answer.code}` };
  }
}

/**
 * The upstream is ready when its API root answers as a registry behind this gateway does: 200.
 * A 401 is ready only where the registry is expected to sign users in itself.
 */
export async function checkUpstream(upstream: Upstream, expected: UpstreamExpectations = GATEWAY_AUTH, timeoutMs = READINESS_TIMEOUT_MS): Promise<Readiness> {
  return readinessOf(await askUpstream(upstream, timeoutMs), expected);
}

export function answerLiveness(res: ServerResponse): void {
  sendJson(res, 200, JSON.stringify({ status: 'ok' }), { 'cache-control': 'no-store' });
}

/**
 * `/readyz`: the upstream as above, and first the certificate: `certificateWaiting` says why the
 * listener has no certificate clients will trust yet (an ACME order still open), or null.
 */
export async function answerReadiness(res: ServerResponse, upstream: Upstream, expected: UpstreamExpectations = GATEWAY_AUTH, certificateWaiting: () => string | null = () => null): Promise<void> {
  const waiting = certificateWaiting();
  const readiness: Readiness = waiting !== null ? { ready: false, reason: waiting } : await checkUpstream(upstream, expected);
  const body = readiness.ready ? { status: 'ready' } : { status: 'unavailable', reason: readiness.reason };
  sendJson(res, readiness.ready ? 200 : 503, JSON.stringify(body), { 'cache-control': 'no-store' });
}

/**
 * Asks the upstream once, when the gateway has started, and warns of what would make every
 * request fail: a registry with a login of its own where the gateway does sign-in, or none
 * answering yet; and where the registry is to sign users in itself, of one that lets anyone in. Never rejects, and
 * never holds the process up; the log may name the upstream, /readyz does not.
 */
export async function warnAboutUpstream(url: URL, log: Logger, expected: UpstreamExpectations = GATEWAY_AUTH): Promise<void> {
  const upstream = createUpstream(url, READINESS_TIMEOUT_MS);
  try {
    const answer = await askUpstream(upstream, READINESS_TIMEOUT_MS, true);
    const fields = { upstream: upstream.origin };
    if (answer.kind === 'registry' && expected.ownAuthExpected) {
      // Nobody would sign anyone in: the gateway leaves it to a registry that does not.
      log.warn(fields, `the upstream registry ${upstream.origin} answered /v2/ without credentials, but with --auth upstream the gateway checks none: anyone can pull and push; turn on the registry's own auth (htpasswd or token), or use --auth basic`);
    } else if (answer.kind === 'own-login' && !expected.ownAuthExpected) {
      log.warn({ ...fields, challenge: answer.scheme }, `${ownLoginReason(answer.scheme)} (upstream ${upstream.origin})`);
    } else if (answer.kind === 'unreachable') {
      log.warn({ ...fields, reason: answer.code }, `the upstream registry ${upstream.origin} is not reachable yet: ${answer.code}; /readyz says 503 until it answers`);
    } else if (answer.kind === 'status') {
      log.warn({ ...fields, status: answer.status }, `the upstream registry ${upstream.origin} answered /v2/ with ${answer.status}, not as a registry does; /readyz says 503 until it answers 200`);
    }
  } catch (err) {
    log.debug({ err }, 'could not check the upstream registry at start');
  } finally {
    upstream.close();
  }
}
