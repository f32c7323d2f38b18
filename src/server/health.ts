// Liveness and readiness, answered without authentication so orchestrators can probe them.

import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { upstreamRequestOptions, type Upstream } from '../proxy/upstream.js';
import { sendJson } from '../registry/answers.js';

const READINESS_TIMEOUT_MS = 5_000;

export type Readiness = { ready: true } | { ready: false; reason: string };

/** The upstream is ready when its API root answers as a registry does: 200, or 401 with auth of its own. */
export function checkUpstream(upstream: Upstream, timeoutMs = READINESS_TIMEOUT_MS): Promise<Readiness> {
  return new Promise((resolve) => {
    const req = http.request(upstreamRequestOptions(upstream, 'GET', '/v2/', { host: upstream.url.host }));
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(status === 200 || status === 401 ? { ready: true } : { ready: false, reason: `upstream registry answered /v2/ with ${status}` });
    });
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      // Anyone may ask /readyz: the reason names no internal address.
      resolve({ ready: false, reason: `upstream registry unreachable: ${code ?? err.message}` });
    });
    req.end();
  });
}

export function answerLiveness(res: ServerResponse): void {
  sendJson(res, 200, JSON.stringify({ status: 'ok' }), { 'cache-control': 'no-store' });
}

export async function answerReadiness(res: ServerResponse, upstream: Upstream): Promise<void> {
  const readiness = await checkUpstream(upstream);
  const body = readiness.ready ? { status: 'ready' } : { status: 'unavailable', reason: readiness.reason };
  sendJson(res, readiness.ready ? 200 : 503, JSON.stringify(body), { 'cache-control': 'no-store' });
}
