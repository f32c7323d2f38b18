// Streaming one request to the upstream and its response back, both ways piped so backpressure
// holds, with each side's failure tearing down the other: a client that goes away aborts the
// upstream request, and an upstream that breaks mid-body breaks the client's connection, so a
// truncated transfer never looks complete.

import http from 'node:http';
import type { Logger } from 'pino';
import { declaresBody, hasUnreadBody, type Routed } from '../registry/context.js';
import { failure, type Failure } from '../registry/failure.js';
import { sendRegistryError } from '../registry/answers.js';
import { buildClientResponseHeaders, buildUpstreamRequestHeaders, challengeScheme, unwritableHeader } from './headers.js';
import { connectionTokens } from './hop-by-hop.js';
import { MAX_ENTRY_BYTES, cacheableHeaders, changedRepository, manifestRequestKey, type CachedManifest, type ManifestCache, type ManifestKey, type Ticket } from './manifest-cache.js';
import type { Reclaimer } from './reclaim.js';
import { rewriteForHost, type RewriteContext } from './rewrite.js';
import { clientStalled, describeUpstreamFailure, upstreamRequestOptions, upstreamTimeout, type Upstream } from './upstream.js';

export interface ForwardSettings {
  readonly upstream: Upstream;
  readonly rewrite: RewriteContext;
  /**
   * The gateway's own challenge, sent in place of any the upstream sends. Null where the registry
   * signs users in itself (`--auth upstream`): the client's Authorization then goes on, and the
   * registry's challenges come back with their realm moved onto the gateway (see headers.ts).
   */
  readonly challenge: string | null;
  /** `host[:port]` we tell the upstream it is reached at (X-Forwarded-Host). */
  readonly forwardedHost: string;
  readonly log: Logger;
  /** Frees relayed chunks promptly, so memory stays flat however fast bytes stream. */
  readonly reclaim: Reclaimer;
  /** Manifests just served, answered again without the upstream; null: off. */
  readonly manifests: ManifestCache | null;
}

/** The request as routed, and the parts of its state that forwarding fills in, for the access log. */
export interface ForwardState extends Routed {
  readonly remoteAddress: string;
  bytesIn: number;
  bytesOut: number;
  upstreamStatus: number | null;
  failure: Failure | null;
  /** Answered from the manifest cache. */
  cached: boolean;
}

/** A GET whose answer goes into the manifest cache when it is whole. */
interface Fill {
  readonly key: ManifestKey;
  readonly ticket: Ticket;
}

export function forward(req: http.IncomingMessage, res: http.ServerResponse, state: ForwardState, settings: ForwardSettings): void {
  const { manifests } = settings;
  // Built once, here: the cache key comes from the very headers the upstream is then sent.
  const named = connectionTokens(req.rawHeaders);
  const headers = buildUpstreamRequestHeaders(req.rawHeaders, { clientAddress: state.remoteAddress, host: settings.forwardedHost, credentials: settings.challenge === null }, named);
  let fill: Fill | null = null;
  let change: Change | null = null;
  if (manifests !== null) {
    const key = manifestRequestKey(state, headers, named);
    const hit = key && manifests.lookup(key);
    if (hit) {
      answerFromCache(req, res, state, hit);
      return;
    }
    if (key && req.method === 'GET') fill = { key, ticket: manifests.ticket(key.repository) };
    if (!key) change = noteChange(state, manifests);
  }
  if (!declaresBody(req)) {
    start(req, res, state, settings, headers, fill, change);
    return;
  }
  // A body can carry a framing error (a bad chunk, a request smuggled behind it) in the very
  // bytes that brought the headers. Node finds it as it parses them, before the next turn of the
  // event loop: starting the upstream request only then means such a request never reaches it.
  setImmediate(() => {
    if (req.destroyed || req.socket.destroyed || res.destroyed) return;
    start(req, res, state, settings, headers, fill, change);
  });
}

function answerFromCache(req: http.IncomingMessage, res: http.ServerResponse, state: ForwardState, hit: CachedManifest): void {
  state.cached = true;
  state.upstreamStatus = 200;
  res.writeHead(200, hit.headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  state.bytesOut = hit.body.length;
  res.end(hit.body);
}

/**
 * A request that may change a repository's manifests (a push, a delete): its copies are dropped
 * now, and again once the upstream has answered or failed, in every process, before the client
 * can hear of it (see Change.settle).
 */
interface Change {
  /**
   * The drop after the upstream's answer or failure, once per request: `then` (the client's
   * answer) runs once every process has dropped the repository's copies; with no `then` (nobody
   * left to answer) the drop is only announced.
   */
  settle(then?: () => void): void;
}

function noteChange(request: Routed, manifests: ManifestCache): Change | null {
  const repository = changedRepository(request);
  if (repository === null) return null;
  manifests.changed(repository);
  let settled = false;
  return {
    settle(then) {
      if (settled) {
        then?.();
        return;
      }
      settled = true;
      manifests.changed(repository, then);
    },
  };
}

function start(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  state: ForwardState,
  settings: ForwardSettings,
  headers: http.OutgoingHttpHeaders,
  fill: Fill | null,
  change: Change | null,
): void {
  const { upstream } = settings;
  const hasBody = declaresBody(req);
  const upstreamReq = http.request(upstreamRequestOptions(upstream, req.method ?? 'GET', req.url ?? '/', headers, !hasBody));

  // No traffic with the upstream for this long: while the client is still sending, the client
  // stalled (408); otherwise the upstream did (504).
  upstreamReq.setTimeout(upstream.timeoutMs, () => {
    upstreamReq.destroy(req.complete ? upstreamTimeout(upstream) : clientStalled(upstream.timeoutMs));
  });
  // Node starts that timer only once connected: a host that drops our packets would otherwise
  // hold the request for the agent's idle timeout, or the kernel's minutes of SYN retries.
  upstreamReq.once('socket', (socket) => {
    if (socket.connecting) socket.setTimeout(upstream.timeoutMs);
  });

  if (hasBody) {
    relayRequestBody(req, upstreamReq, state, settings.reclaim);
  } else {
    // Most registry requests (GET, HEAD, an empty POST) have no body: send them at once instead
    // of waiting a turn of the event loop for the end of a stream with nothing in it.
    upstreamReq.end();
  }

  upstreamReq.on('response', (upstreamRes) => {
    if (change === null) relayResponse(req, res, upstreamRes, state, settings, fill);
    else holdResponse(req, res, upstreamRes, state, settings, change);
  });
  upstreamReq.on('error', (err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A response on hold has its own way out (see holdResponse).
    if (res.destroyed || state.upstreamStatus !== null) return;
    const described = describeUpstreamFailure(err);
    state.failure = failure(described.kind, described.detail);
    settings.log.error({ upstream: upstream.origin, reason: described.detail, method: req.method, path: state.path }, described.message);
    // The connection stays open for the client's next request unless body bytes are still coming.
    const answer = () => sendRegistryError(res, described.status, 'UNAVAILABLE', described.message, hasUnreadBody(req) ? { connection: 'close' } : {});
    if (change === null) answer();
    else change.settle(whileConnected(res, answer));
  });

  // An upstream request can also end with neither a response nor an error: an upstream answering
  // 101 Switching Protocols, which Node does not hand over without an 'upgrade' listener, just
  // closes. The client must still get an answer.
  upstreamReq.on('close', () => {
    if (state.upstreamStatus !== null || state.failure !== null || res.headersSent || res.destroyed) {
      // The registry may have made the change even though the client is gone.
      change?.settle();
      return;
    }
    state.failure = failure('upstream-unavailable', 'upstream request closed without a response');
    settings.log.error({ upstream: upstream.origin, reason: state.failure.detail }, 'upstream registry sent an unusable response');
    const answer = () => sendRegistryError(res, 502, 'UNAVAILABLE', 'upstream registry sent an unusable response', hasUnreadBody(req) ? { connection: 'close' } : {});
    if (change === null) answer();
    else change.settle(whileConnected(res, answer));
  });

  // The client went away before the whole response was written: stop the upstream work too.
  res.on('close', () => {
    if (!res.writableFinished) upstreamReq.destroy();
  });
}

/** `answer`, unless the client has gone or been answered meanwhile. */
function whileConnected(res: http.ServerResponse, answer: () => void): () => void {
  return () => {
    if (!res.destroyed && !res.headersSent) answer();
  };
}

/**
 * The upstream's answer to a change, relayed once every process has dropped the repository's
 * copies: a client that hears its push succeeded then gets the new manifest from any process.
 * Until then the upstream's response stays paused (nothing reads it: such answers are a few
 * hundred bytes at most, and a longer one waits in the socket).
 */
function holdResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upstreamRes: http.IncomingMessage,
  state: ForwardState,
  settings: ForwardSettings,
  change: Change,
): void {
  // Marks the response as the upstream's, so the upstream request's 'error' and 'close' leave
  // the answer to this function; relayResponse sets it again.
  state.upstreamStatus = upstreamRes.statusCode ?? 502;
  // An error while on hold (the upstream going away) shows as `destroyed` below; unheard, it would throw.
  upstreamRes.on('error', () => undefined);
  change.settle(() => {
    if (res.destroyed) {
      upstreamRes.destroy();
      return;
    }
    if (upstreamRes.destroyed) {
      refuseResponse(req, res, upstreamRes, state, settings, 'the upstream closed its answer before it was relayed');
      return;
    }
    relayResponse(req, res, upstreamRes, state, settings, null);
  });
}

/**
 * The request body, upstream, with backpressure. Not stream.pipeline: it would destroy the
 * client's request, and with it the socket, before we could answer 502 when the upstream fails
 * early. Not pipe either: a TLS read yields up to four 16 KiB records, each its own 'data' event,
 * and pipe would make each its own write to the upstream socket; corked until the event loop has
 * handled the read, they go out in one.
 */
function relayRequestBody(req: http.IncomingMessage, upstreamReq: http.ClientRequest, state: ForwardState, reclaim: Reclaimer): void {
  let corked = false;
  const flush = () => {
    if (!corked) return;
    corked = false;
    upstreamReq.uncork();
  };
  req.on('data', (chunk: Buffer) => {
    state.bytesIn += chunk.length;
    reclaim.relayed(chunk.length);
    if (upstreamReq.destroyed) return;
    if (!corked) {
      corked = true;
      upstreamReq.cork();
      setImmediate(flush);
    }
    if (!upstreamReq.write(chunk)) req.pause();
  });
  upstreamReq.on('drain', () => req.resume());
  req.on('end', () => {
    flush();
    upstreamReq.end();
  });
  req.on('error', (err) => upstreamReq.destroy(err));
}

/**
 * Response bytes one client may have waiting in the gateway before the upstream is paused. A
 * TLS socket reports itself full after every 64 KiB read from the upstream (its own mark is 16
 * KiB), and pausing and resuming the upstream for each made two epoll calls per chunk; with this
 * much room a pull runs without pausing until the client really falls behind.
 */
const RESPONSE_BUFFER = 256 * 1024;

function relayResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upstreamRes: http.IncomingMessage,
  state: ForwardState,
  settings: ForwardSettings,
  fill: Fill | null,
): void {
  const status = upstreamRes.statusCode ?? 502;
  state.upstreamStatus = status;
  if (status === 401 && settings.challenge !== null) noteOwnLogin(upstreamRes, state, settings);
  const rewrite = rewriteForHost(settings.rewrite, req.headers.host);
  // A literal of one fixed shape: spreading the rewrite context into a new object here cost more
  // than the rest of this function, on every request (the CPU profile of `npm run profile`).
  const headers = buildClientResponseHeaders(upstreamRes.rawHeaders, {
    publicOrigin: rewrite.publicOrigin,
    upstreamOrigins: rewrite.upstreamOrigins,
    status,
    challenge: settings.challenge,
    // Where the registry signs users in itself, the public origin as this client reaches it: a
    // realm must be absolute, and relative is what rewriteForHost makes for one using another name.
    realmOrigin: settings.challenge === null ? (rewrite.publicOrigin ?? `https://${req.headers.host ?? settings.forwardedHost}`) : undefined,
    // Only the registry API's answers say its version; a token service's (upstream auth) do not.
    registryApi: state.path === '/v2' || state.path.startsWith('/v2/'),
  });
  const unwritable = unwritableHeader(headers);
  if (unwritable !== null) {
    refuseResponse(req, res, upstreamRes, state, settings, `invalid characters in its ${unwritable} header`);
    return;
  }
  try {
    // Node's own reason phrase: the upstream's is one more string it could put a CR/LF in.
    res.writeHead(status, headers);
  } catch (err) {
    refuseResponse(req, res, upstreamRes, state, settings, (err as Error).message);
    return;
  }
  // What pipe does, with one listener per event instead of pipe's seven: most responses are a
  // few hundred bytes, and setting up and tearing down a pipe cost more than relaying them. A
  // refused write still ends in 'drain', whether or not we paused for it.
  const keep = fill && settings.manifests ? collectForCache(upstreamRes, status, headers, fill, settings.manifests) : null;
  upstreamRes.on('data', (chunk: Buffer) => {
    state.bytesOut += chunk.length;
    settings.reclaim.relayed(chunk.length);
    keep?.(chunk);
    if (!res.write(chunk) && res.writableLength >= RESPONSE_BUFFER) upstreamRes.pause();
  });
  res.on('drain', () => upstreamRes.resume());
  upstreamRes.on('end', () => res.end());
  upstreamRes.on('error', () => undefined); // seen through 'close' below
  upstreamRes.on('close', () => {
    if (upstreamRes.complete) return;
    state.failure ??= failure('upstream-interrupted', 'response interrupted: the upstream closed before the end of the body');
    // Destroying the socket is what tells the client the body is short: never end it cleanly.
    res.destroy();
    req.destroy();
  });
}

/** How often at most the log says that the registry refused a request itself. */
const OWN_LOGIN_WARNING_MS = 60_000;
const ownLoginWarned = new WeakMap<ForwardSettings, number>();

/**
 * Where the gateway signs users in (a challenge of its own), it never passes credentials on, so a
 * 401 from the upstream is the registry asking for a login of its own (an auth section in its
 * config): every user then gets 401 whatever their password. The client sees the gateway's
 * challenge; the log says whose refusal it was, at most once a minute per gateway (each request's
 * access line has `upstreamStatus: 401`). Never called with `--auth upstream`, where such a 401 is
 * the registry at work.
 */
function noteOwnLogin(upstreamRes: http.IncomingMessage, state: ForwardState, settings: ForwardSettings): void {
  const now = Date.now();
  const last = ownLoginWarned.get(settings);
  if (last !== undefined && now - last < OWN_LOGIN_WARNING_MS) return;
  ownLoginWarned.set(settings, now);
  settings.log.warn(
    { upstream: settings.upstream.origin, method: state.method, path: state.path, upstreamStatus: 401, challenge: challengeScheme(upstreamRes.headers['www-authenticate']) },
    'the registry answered 401 itself: it has its own auth section; turn it off in the registry\'s config, the gateway does authentication',
  );
}

/** Gathers a whole 200 manifest as it is relayed, and keeps it once complete; null when it is not worth keeping. */
function collectForCache(upstreamRes: http.IncomingMessage, status: number, headers: http.OutgoingHttpHeaders, fill: Fill, manifests: ManifestCache): ((chunk: Buffer) => void) | null {
  const kept = cacheableHeaders(status, headers);
  const length = Number(headers['content-length']);
  if (kept === null || !Number.isSafeInteger(length) || length > MAX_ENTRY_BYTES) return null;
  const chunks: Buffer[] = [];
  let received = 0;
  upstreamRes.on('end', () => {
    if (received !== length || !upstreamRes.complete) return;
    // A copy of its own: the chunks are views into the socket's 64 KiB read buffers.
    const body = Buffer.allocUnsafeSlow(length);
    let at = 0;
    for (const chunk of chunks) at += chunk.copy(body, at);
    manifests.store(fill.ticket, fill.key, { headers: kept, body });
  });
  return (chunk) => {
    received += chunk.length;
    if (received <= length) chunks.push(chunk);
  };
}

/** An upstream response head Node would refuse to write is the upstream's fault: 502 instead. */
function refuseResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upstreamRes: http.IncomingMessage,
  state: ForwardState,
  settings: ForwardSettings,
  why: string,
): void {
  upstreamRes.destroy();
  state.failure = failure('upstream-bad-response', `unusable upstream response: ${why}`);
  settings.log.error({ upstream: settings.upstream.origin, reason: state.failure.detail }, 'upstream registry sent an unusable response');
  sendRegistryError(res, 502, 'UNAVAILABLE', 'upstream registry sent an unusable response', hasUnreadBody(req) ? { connection: 'close' } : {});
}
