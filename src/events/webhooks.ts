// Sending events to HTTP endpoints, in the registry's own notification envelope
// (https://distribution.github.io/distribution/about/notifications/), one event per POST, so a
// receiver written for the registry's notifications reads ours too.
//
// - One queue per endpoint, delivered strictly in order: one POST at a time, and the next event
//   only once the endpoint has answered 2xx for this one. An endpoint that fails is retried with
//   the backoff sequence, for as long as the gateway runs.
// - Bounded: a queue holds at most queueLimit events; when full, the oldest undelivered one goes
//   (a receiver that comes back wants the newest state more than the oldest history).
// - send() never waits and never throws: the request that made the event is not held up by a
//   receiver, however slow.
// - Timers are unref'd: pending deliveries never keep the process alive; close() gives them a
//   grace period.

import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { GatewayEvent } from './event.js';

export interface WebhookSource {
  /** The gateway's host name, as `source.addr`. */
  readonly host: string;
  /** This gateway process, as `source.instanceID`. */
  readonly instance: string;
}

export interface WebhookOptions {
  readonly urls: readonly URL[];
  /** Signs each body (X-Registry-Gateway-Signature); null: unsigned. */
  readonly secret: string | null;
  /** Events waiting per endpoint before the oldest undelivered one is dropped. */
  readonly queueLimit: number;
  readonly log: Logger;
  /** Per attempt, answer and body included; default 10 s. */
  readonly timeoutMs?: number;
  /** Waits between attempts of one event; the last repeats. Default 1 s, 2 s, 5 s, 10 s, 30 s, 1 min, then every 5 min. */
  readonly backoffMs?: readonly number[];
  readonly source: WebhookSource;
  /** Called with the endpoint's URL as logged (no userinfo, no query). */
  readonly onDropped?: (url: string) => void;
  readonly onDelivered?: (url: string) => void;
  readonly onFailedAttempt?: (url: string) => void;
}

export interface Webhooks {
  /** Queues the event for every endpoint; returns at once, never throws. Ignored once close() was called. */
  send(event: GatewayEvent): void;
  /** Events queued, over all endpoints, the ones being sent included. */
  pending(): number;
  /** Delivers what is queued for up to graceMs (default 5 s), without waiting to retry; logs what is left. */
  close(graceMs?: number): Promise<void>;
}

export const EVENTS_CONTENT_TYPE = 'application/vnd.docker.distribution.events.v1+json';
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_BACKOFF_MS: readonly number[] = [1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000];
const DEFAULT_GRACE_MS = 5_000;
/** At most one warning per endpoint this often, of each kind (failed attempts, dropped events). */
const LOG_INTERVAL_MS = 10_000;

/** The registry's notification envelope for one event; null fields of the target are left out. */
export function envelopeOf(event: GatewayEvent, source: WebhookSource): object {
  const target = {
    mediaType: event.mediaType,
    size: event.size,
    digest: event.digest,
    repository: event.repository,
    tag: event.tag,
  };
  return {
    events: [
      {
        id: event.id,
        timestamp: event.timestamp,
        action: event.action,
        target: Object.fromEntries(Object.entries(target).filter(([, value]) => value !== null)),
        request: { addr: event.address, method: event.method, path: event.path },
        actor: event.user === null ? {} : { name: event.user },
        source: { addr: source.host, instanceID: source.instance },
        status: event.status,
        ...(event.action === 'denied' && event.reason !== null ? { reason: event.reason } : {}),
        via: event.via,
      },
    ],
  };
}

/** `sha256=` and the hex HMAC-SHA256 of the body's UTF-8 bytes, as X-Registry-Gateway-Signature. */
export function signatureOf(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

interface Endpoint {
  /** Where the POST goes: the configured URL without its userinfo. */
  readonly target: string;
  /** The URL as logs and callbacks name it: no userinfo, no query (either may hold a secret). */
  readonly label: string;
  /** Basic credentials from the URL's userinfo, which fetch will not take in the URL itself. */
  readonly authorization: string | null;
  /** Oldest first; queue[0] is the event being sent, or waiting to be retried. */
  queue: GatewayEvent[];
  running: Promise<void> | null;
  /** Attempts failed since the last delivery. */
  failedAttempts: number;
  retryWait: { readonly timer: NodeJS.Timeout; readonly wake: () => void } | null;
  lastFailureLogAt: number;
  droppedUnlogged: number;
  lastDropLogAt: number;
  dropLogTimer: NodeJS.Timeout | null;
}

type Attempt = { readonly ok: true } | { readonly ok: false; readonly why: string };

export function createWebhooks(options: WebhookOptions): Webhooks {
  const { log, secret, source } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const backoffMs = options.backoffMs !== undefined && options.backoffMs.length > 0 ? options.backoffMs : DEFAULT_BACKOFF_MS;
  const queueLimit = Math.max(1, Math.floor(options.queueLimit));
  const endpoints = options.urls.map(endpointOf);
  /** Aborts the attempts in flight when the grace of close() is over. */
  const stop = new AbortController();
  let closing = false;
  let closed: Promise<void> | null = null;

  const start = (ep: Endpoint) => {
    if (ep.running !== null) return;
    ep.running = deliverQueue(ep).finally(() => {
      ep.running = null;
      // An event queued between the loop's last look and now; during close, nothing restarts.
      if (!closing && ep.queue.length > 0) start(ep);
    });
  };

  const deliverQueue = async (ep: Endpoint): Promise<void> => {
    for (let event = ep.queue[0]; event !== undefined && !stop.signal.aborted; event = ep.queue[0]) {
      const attempt = await post(ep, event);
      if (attempt.ok) {
        delivered(ep, event);
        continue;
      }
      if (stop.signal.aborted) return; // our own abort, not the endpoint's failure
      failedAttempt(ep, attempt.why);
      if (closing) return; // no waiting to retry once the gateway is stopping
      await pause(ep, backoffMs[Math.min(ep.failedAttempts, backoffMs.length) - 1]!);
    }
  };

  const post = async (ep: Endpoint, event: GatewayEvent): Promise<Attempt> => {
    const body = JSON.stringify(envelopeOf(event, source));
    const headers: Record<string, string> = {
      'content-type': EVENTS_CONTENT_TYPE,
      'x-registry-gateway-event': event.action,
      'x-registry-gateway-delivery': event.id,
      ...(secret === null ? {} : { 'x-registry-gateway-signature': signatureOf(body, secret) }),
      ...(ep.authorization === null ? {} : { authorization: ep.authorization }),
    };
    try {
      const response = await fetch(ep.target, {
        method: 'POST',
        headers,
        body, // fetch sends a string as its UTF-8 bytes: the bytes signed
        // A redirect is not a delivery: the receiver's address is to be fixed, not followed.
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stop.signal]),
      });
      await discardBody(response);
      // Any other status is retried, 4xx included (not only 408 and 429): a receiver that refuses
      // our events is most often misconfigured, and fixed later; dropping would lose them for good.
      return response.status >= 200 && response.status < 300 ? { ok: true } : { ok: false, why: `status ${response.status}` };
    } catch (err) {
      return { ok: false, why: describeError(err, timeoutMs) };
    }
  };

  const delivered = (ep: Endpoint, event: GatewayEvent) => {
    // Unless the event was dropped from a full queue while it was being sent.
    if (ep.queue[0] === event) ep.queue.shift();
    options.onDelivered?.(ep.label);
    if (ep.failedAttempts === 0) return;
    log.info({ webhook: ep.label, failedAttempts: ep.failedAttempts }, 'webhook delivered again');
    ep.failedAttempts = 0;
    ep.lastFailureLogAt = 0;
  };

  const failedAttempt = (ep: Endpoint, why: string) => {
    ep.failedAttempts++;
    options.onFailedAttempt?.(ep.label);
    const now = Date.now();
    if (now - ep.lastFailureLogAt < LOG_INTERVAL_MS) return;
    ep.lastFailureLogAt = now;
    const retryInMs = closing ? null : backoffMs[Math.min(ep.failedAttempts, backoffMs.length) - 1]!;
    log.warn(
      { webhook: ep.label, failure: why, failedAttempts: ep.failedAttempts, queued: ep.queue.length, retryInMs },
      closing ? 'webhook delivery failed; not retried, the gateway is stopping' : `webhook delivery failed; retrying in ${retryInMs} ms`,
    );
  };

  const enqueue = (ep: Endpoint, event: GatewayEvent) => {
    while (ep.queue.length >= queueLimit) {
      ep.queue.shift();
      dropped(ep);
    }
    ep.queue.push(event);
    start(ep);
  };

  const dropped = (ep: Endpoint) => {
    options.onDropped?.(ep.label);
    ep.droppedUnlogged++;
    const wait = ep.lastDropLogAt + LOG_INTERVAL_MS - Date.now();
    if (wait <= 0) logDropped(ep);
    else ep.dropLogTimer ??= unref(setTimeout(() => logDropped(ep), wait));
  };

  const logDropped = (ep: Endpoint) => {
    if (ep.dropLogTimer !== null) clearTimeout(ep.dropLogTimer);
    ep.dropLogTimer = null;
    if (ep.droppedUnlogged === 0) return;
    log.warn(
      { webhook: ep.label, dropped: ep.droppedUnlogged, queueLimit },
      `webhook queue full: dropped the ${ep.droppedUnlogged} oldest undelivered event(s); the endpoint has not answered 2xx for a while`,
    );
    ep.droppedUnlogged = 0;
    ep.lastDropLogAt = Date.now();
  };

  const close = async (graceMs: number): Promise<void> => {
    closing = true;
    // Waits to retry end now: each endpoint tries what it has once more, within the grace.
    for (const ep of endpoints) ep.retryWait?.wake();
    const running = Promise.all(endpoints.map((ep) => ep.running));
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (graceTimer = unref(setTimeout(resolve, graceMs))));
    await Promise.race([running, graceOver]);
    clearTimeout(graceTimer);
    stop.abort();
    await running;
    for (const ep of endpoints) logDropped(ep);
    const left = endpoints.filter((ep) => ep.queue.length > 0);
    if (left.length === 0) return;
    const undelivered = left.reduce((sum, ep) => sum + ep.queue.length, 0);
    log.warn(
      { undelivered, webhooks: Object.fromEntries(left.map((ep) => [ep.label, ep.queue.length])) },
      `webhooks: ${undelivered} event(s) not delivered before the gateway stopped`,
    );
  };

  return {
    send(event) {
      try {
        if (closing) {
          log.debug({ event: event.id }, 'webhooks closed: event not sent');
          return;
        }
        for (const ep of endpoints) enqueue(ep, event);
      } catch (err) {
        log.error({ err: err instanceof Error ? err.message : String(err) }, 'webhooks: cannot queue an event');
      }
    },
    pending: () => endpoints.reduce((sum, ep) => sum + ep.queue.length, 0),
    close: (graceMs = DEFAULT_GRACE_MS) => (closed ??= close(graceMs)),
  };
}

function endpointOf(url: URL): Endpoint {
  const target = new URL(url.href);
  target.username = '';
  target.password = '';
  const authorization =
    url.username === '' && url.password === ''
      ? null
      : `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
  return {
    target: target.href,
    label: `${url.origin}${url.pathname}`,
    authorization,
    queue: [],
    running: null,
    failedAttempts: 0,
    retryWait: null,
    lastFailureLogAt: 0,
    droppedUnlogged: 0,
    lastDropLogAt: 0,
    dropLogTimer: null,
  };
}

/** Waits ms, or until woken (by close). */
function pause(ep: Endpoint, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      ep.retryWait = null;
      resolve();
    };
    const timer = unref(setTimeout(wake, ms));
    ep.retryWait = { timer, wake };
  });
}

/** Reads the answer's body to its end, without keeping it, so the connection can be used again. */
async function discardBody(response: Response): Promise<void> {
  const reader = response.body?.getReader();
  if (reader === undefined) return;
  try {
    while (!(await reader.read()).done);
  } catch {
    // The status has been answered; a body cut short changes nothing.
  }
}

/** An error of fetch in a few words: the system's code (ECONNREFUSED…) when there is one. */
function describeError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `no answer in ${timeoutMs} ms`;
  const cause = err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

function unref(timer: NodeJS.Timeout): NodeJS.Timeout {
  timer.unref();
  return timer;
}
