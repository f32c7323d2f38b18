// What the gateway counts, per process: requests, bytes, logins and upstream failures. Label
// values come from small fixed sets (never a path, user or header), so no client can grow the
// number of series.

import { readdirSync } from 'node:fs';
import type { AuthStats } from '../auth/authenticator.js';
import { AUTH_FAILURES, type AuthFailure } from '../auth/scheme.js';
import { responseBytes, type RequestContext } from '../registry/context.js';
import type { FailureKind } from '../registry/failure.js';
import { EVENT_ACTIONS, type EventAction } from '../events/event.js';
import { createMetricRegistry, labels, renderPrometheus, type Samples } from './registry.js';

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);
// From a cached manifest HEAD (a millisecond) to a multi-GB layer (minutes).
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
// bcrypt cost 5 takes ~2 ms, cost 12 ~250 ms, and waiting for a free thread adds to it.
const VERIFY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export type UpstreamError = 'unavailable' | 'timeout' | 'bad_response' | 'interrupted';
const UPSTREAM_ERRORS: readonly UpstreamError[] = ['unavailable', 'timeout', 'bad_response', 'interrupted'];

/** What the process can tell at scrape time, besides what it counted. */
export interface ScrapeState {
  readonly auth: AuthStats;
  readonly connections: number;
}

/** What became of a webhook delivery attempt. */
export type WebhookResult = 'delivered' | 'failed' | 'dropped';
const WEBHOOK_RESULTS: readonly WebhookResult[] = ['delivered', 'failed', 'dropped'];

export interface GatewayMetrics {
  requestDone(ctx: RequestContext): void;
  /** One event recorded (a push, a delete, a refusal). */
  eventRecorded(action: EventAction): void;
  /** One webhook delivery attempt: delivered, failed (retried later), or an undelivered event dropped from a full queue. */
  webhook(result: WebhookResult): void;
  authFailed(reason: AuthFailure): void;
  /** One password hash checked, taking this long (waiting for a thread included). */
  verified(seconds: number): void;
  samples(state: ScrapeState): Samples;
  render(samples: Samples): string;
}

const UPSTREAM_ERROR_OF: Partial<Record<FailureKind, UpstreamError>> = {
  'upstream-unavailable': 'unavailable',
  'upstream-timeout': 'timeout',
  'upstream-bad-response': 'bad_response',
  'upstream-interrupted': 'interrupted',
};

/** Which failure of the upstream, if any, ended a forwarded request (a client's stall is none). */
export function upstreamErrorOf(ctx: RequestContext): UpstreamError | null {
  if (!ctx.forwarded || ctx.failure === null) return null;
  return UPSTREAM_ERROR_OF[ctx.failure.kind] ?? null;
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = createMetricRegistry();
  const labelSets = (name: string, values: readonly string[]) => values.map((v) => labels({ [name]: v }));
  const requests = registry.counter('registry_gateway_requests_total', 'Requests answered, by method and status code.', []);
  const incomplete = registry.counter('registry_gateway_responses_incomplete_total', 'Responses cut before their end (client gone, upstream broke, timeout).');
  const duration = registry.histogram('registry_gateway_request_duration_seconds', 'Time from request to the end of its response, by method.', REQUEST_BUCKETS, []);
  const received = registry.counter('registry_gateway_received_bytes_total', 'Request body bytes relayed to the upstream.');
  const sent = registry.counter('registry_gateway_sent_bytes_total', 'Response body bytes sent to clients.');
  const verifications = registry.counter('registry_gateway_auth_verifications_total', 'Password hashes checked (cache hits and shared checks excluded).');
  const verifyTime = registry.histogram('registry_gateway_auth_verification_duration_seconds', 'Time to check one password hash.', VERIFY_BUCKETS);
  const cacheHits = registry.counter('registry_gateway_auth_cache_hits_total', 'Requests let in by a recent success with the same credentials.');
  const authFailures = registry.counter('registry_gateway_auth_failures_total', 'Requests refused before reaching the registry, by reason.', labelSets('reason', AUTH_FAILURES));
  const upstreamErrors = registry.counter('registry_gateway_upstream_errors_total', 'Forwarded requests the upstream failed, by kind.', labelSets('kind', UPSTREAM_ERRORS));
  const events = registry.counter('registry_gateway_events_total', 'Events recorded, by action: manifest pushes and deletes, and refusals.', labelSets('action', EVENT_ACTIONS));
  const webhooks = registry.counter('registry_gateway_webhook_deliveries_total', 'Webhook delivery attempts by result; dropped: undelivered events pushed out of a full queue.', labelSets('result', WEBHOOK_RESULTS));
  const connections = registry.gauge('registry_gateway_client_connections', 'Client connections open now.');
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory of the gateway processes.');
  const fds = registry.gauge('process_open_fds', 'File descriptors open in the gateway processes.');
  const cpu = registry.counter('process_cpu_seconds_total', 'CPU time used by the gateway processes.');

  // Label texts are built once per method (and status): requestDone runs for every request.
  const labelCache = new Map<string, string>();
  const cached = (key: string, make: () => string) => {
    let text = labelCache.get(key);
    if (text === undefined) labelCache.set(key, (text = make()));
    return text;
  };

  return {
    requestDone(ctx) {
      const m = ctx.req.method !== undefined && METHODS.has(ctx.req.method) ? ctx.req.method : 'OTHER';
      const code = ctx.res.statusCode;
      const method = cached(m, () => labels({ method: m }));
      const text = cached(`${m} ${code}`, () => labels({ method: m, code: String(code) }));
      requests.inc(text);
      duration.observe(Number(process.hrtime.bigint() - ctx.startedAt) / 1e9, method);
      if (!ctx.res.writableFinished) incomplete.inc();
      received.inc('', ctx.bytesIn);
      sent.inc('', responseBytes(ctx));
      const upstreamError = upstreamErrorOf(ctx);
      if (upstreamError !== null) upstreamErrors.inc(labels({ kind: upstreamError }));
    },
    authFailed: (reason) => authFailures.inc(labels({ reason })),
    eventRecorded: (action) => events.inc(cached(`event ${action}`, () => labels({ action }))),
    webhook: (result) => webhooks.inc(cached(`webhook ${result}`, () => labels({ result }))),
    verified: (seconds) => verifyTime.observe(seconds),
    samples(state) {
      verifications.set(state.auth.verifications);
      cacheHits.set(state.auth.cacheHits);
      connections.set(state.connections);
      rss.set(process.memoryUsage.rss());
      fds.set(openFileDescriptors());
      const { user, system } = process.cpuUsage();
      cpu.set((user + system) / 1e6);
      return registry.samples();
    },
    render: (samples) => renderPrometheus(registry.families, samples),
  };
}

function openFileDescriptors(): number {
  try {
    return readdirSync('/proc/self/fd').length - 1; // less the one this listing opened
  } catch {
    return Number.NaN; // not Linux
  }
}
