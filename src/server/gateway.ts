// Wiring: config -> sign-in scheme, upstream, TLS listener and request pipeline; and the orderly
// way down again.

import https from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { watchAccess, type AccessControl } from '../access/access-watch.js';
import { createAuthenticator, type Authenticator } from '../auth/authenticator.js';
import { addUserHint } from '../auth/htpasswd.js';
import { watchHtpasswd } from '../auth/htpasswd-watch.js';
import { createBasicScheme } from '../auth/basic-scheme.js';
import type { AuthScheme } from '../auth/scheme.js';
import { createLoginThrottle } from '../auth/throttle.js';
import { createUpstreamScheme } from '../auth/upstream-scheme.js';
import { createTokenScheme } from '../auth/token-scheme.js';
import { createTokens } from '../auth/tokens.js';
import type { Config } from '../config/types.js';
import { createGatewayMetrics, type GatewayMetrics } from '../metrics/gateway-metrics.js';
import type { Samples } from '../metrics/registry.js';
import { GatewayError } from '../errors.js';
import type { ForwardSettings } from '../proxy/forward.js';
import { createManifestCache, type ManifestCache } from '../proxy/manifest-cache.js';
import { createReclaimer } from '../proxy/reclaim.js';
import { createUpstream } from '../proxy/upstream.js';
import { isAcmeSource } from '../tls/acme.js';
import { answerAlpnChallenges } from '../tls/alpn-challenge.js';
import { startHttpChallengeListener } from '../tls/http-challenge.js';
import { secureContextOptions, secureServerOptions } from '../tls/options.js';
import { createLogger, type Logger } from './logger.js';
import { limitConnections } from './connection-limit.js';
import { handleClientError } from './client-error.js';
import { createManifestSync, type ManifestSync } from './manifest-sync.js';
import { syncAcmeChallenges } from './acme-sync.js';
import { createRequestHandler } from './pipeline.js';
import { createTokenEndpoint } from './token-endpoint.js';
import type { RequestContext } from '../registry/context.js';
import type { GatewaySetup } from './resources.js';
import { eventFromRequest } from '../events/capture.js';
import { openEventRecord } from './event-record.js';
import { createWebUi } from './web-ui.js';

export interface RunningGateway {
  /** `https://HOST:PORT` as bound (loopback host when listening on every address). */
  readonly url: string;
  readonly port: number;
  readonly server: https.Server;
  /** The htpasswd users' authenticator; null with `--auth upstream`, where the gateway checks no credentials. */
  readonly authenticator: Authenticator | null;
  /** Re-read the certificate pair, the htpasswd file and the access file now (what SIGHUP does); false if one was refused. */
  reload(): Promise<boolean>;
  /** Stop accepting, let in-flight requests finish for up to the shutdown timeout, then cut the rest. */
  close(options?: CloseOptions): Promise<void>;
  /** This process's counts, when --metrics-listen is set. */
  readonly metrics: { samples(): Promise<Samples>; render(samples: Samples): string } | null;
}

function displayHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function manifestCache(config: Config, sync: ManifestSync | null): ManifestCache | null {
  if (config.manifestCacheMs === 0) return null;
  return createManifestCache({ ttlMs: config.manifestCacheMs, onChange: sync?.announce });
}

function forwardingSettings(config: Config, port: number, log: Logger, sync: ManifestSync | null, challenge: string | null): ForwardSettings {
  const upstream = createUpstream(config.upstream, config.timeouts.upstreamMs);
  const forwardedHost = config.publicUrl?.host ?? `${displayHost(config.listen.host)}:${port}`;
  const upstreamOrigins = new Set([upstream.origin, `https://${forwardedHost}`.toLowerCase(), `http://${forwardedHost}`.toLowerCase()]);
  if (config.publicUrl) upstreamOrigins.add(config.publicUrl.origin.toLowerCase());
  return {
    upstream,
    rewrite: { publicOrigin: config.publicUrl?.origin ?? null, upstreamOrigins },
    challenge,
    forwardedHost,
    log,
    reclaim: createReclaimer(),
    manifests: manifestCache(config, sync),
  };
}

/** A sign-in scheme and what it runs besides (an authenticator, a watched file), started. */
interface SignIn {
  readonly scheme: AuthScheme;
  readonly authenticator: Authenticator | null;
  /** Re-reads what it reads (the htpasswd file); false if that was refused. */
  reload(): Promise<boolean>;
  close(): Promise<void>;
  /** The token service at /token, for a scheme that issues its own tokens. */
  readonly tokenEndpoint?: (ctx: RequestContext) => Promise<void>;
  /** Signs in a username and password against the htpasswd users (the web UI's sign-in); null when the gateway has no users. */
  readonly basic: AuthScheme | null;
}

/** The gateway signs users in, against the htpasswd file it watches. */
function basicSignIn(setup: GatewaySetup, log: Logger, metrics: GatewayMetrics | null): SignIn {
  const { config } = setup;
  // With several processes, one bcrypt thread each already puts a login flood on every core; more
  // would only add ~10 MiB apiece.
  const authenticator = createAuthenticator({ users: setup.users, workers: config.workers > 1 ? 1 : undefined, onVerified: metrics?.verified });
  const watch = watchHtpasswd(config.htpasswdFile!, authenticator, log);
  const scheme = createBasicScheme({ authenticator, throttle: createLoginThrottle(config.loginThrottle), realm: config.realm });
  return {
    scheme,
    basic: scheme,
    authenticator,
    reload: () => watch.reload(),
    async close() {
      watch.close();
      await authenticator.close();
    },
  };
}

/**
 * The gateway issues bearer tokens and checks them, for the same htpasswd users (Basic sign-in at
 * /token, and sent unasked on /v2/, takes the Basic scheme's path with its cache and throttle).
 */
function tokenSignIn(setup: GatewaySetup, log: Logger, metrics: GatewayMetrics | null, access: AccessControl | null): SignIn {
  const basic = basicSignIn(setup, log, metrics);
  const settings = setup.config.token!;
  const authenticator = basic.authenticator!;
  const tokens = createTokens({ keys: setup.tokenKeys!, service: settings.service, accessTtlS: settings.accessTtlS, refreshTtlS: settings.refreshTtlS, hashOf: (user) => authenticator.hashOf(user) });
  const publicOrigin = setup.config.publicUrl?.origin ?? null;
  return {
    ...basic,
    scheme: createTokenScheme({ tokens, basic: basic.scheme, service: settings.service, publicOrigin }),
    tokenEndpoint: createTokenEndpoint({ tokens, basic: basic.scheme, service: settings.service, access, log, metrics }),
  };
}

/** The registry signs users in: no users, no credential cache, no throttle, no hashing threads. */
function upstreamSignIn(): SignIn {
  return { scheme: createUpstreamScheme(), basic: null, authenticator: null, reload: async () => true, close: async () => undefined };
}

/** Binds host:port, or takes over a socket already listening (a cluster worker's, from the primary). */
function listen(server: https.Server, host: string, port: number, shared?: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new GatewayError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${err.code ?? err.message}; check --listen`, { cause: err }));
    server.once('error', onError);
    const done = () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    if (shared) server.listen(shared, done);
    else server.listen(port, host, done);
  });
}

export interface CloseOptions {
  /** The primary of --workers: settles once every worker has exited (the record is closed after). */
  readonly workersGone?: Promise<unknown>;
}

export interface StartOptions {
  logger?: Logger;
  /** A socket already listening on the configured address, shared with other processes. */
  listening?: Server;
}

export async function startGateway(setup: GatewaySetup, options: StartOptions = {}): Promise<RunningGateway> {
  const { config } = setup;
  const log = options.logger ?? createLogger(config.logLevel);
  const metrics = config.metricsListen === null ? null : createGatewayMetrics();
  // The sign-in scheme: the one place a scheme is chosen.
  const access = setup.access && watchAccess(setup.access.file, setup.access.policy, log, { anonymous: config.auth === 'token' });
  const signIn = config.auth === 'upstream' ? upstreamSignIn() : config.auth === 'token' ? tokenSignIn(setup, log, metrics, access) : basicSignIn(setup, log, metrics);
  let draining = false;
  // The listener serves what the certificate source gives, and each renewal it takes.
  const { certificates, clientCa } = setup.tls;
  const server = https.createServer({
    ...secureServerOptions({ ...certificates.current(), clientCa }),
    // Multi-GB layers take as long as they take: no limit on a whole request, but a client
    // must finish its headers promptly and keep its connection busy.
    requestTimeout: 0,
    headersTimeout: config.timeouts.headersMs,
    // How often Node looks for connections past the headers timeout: by default every 30 s, so a
    // slowloris would hold its connection for up to that much longer than the timeout says.
    connectionsCheckingInterval: Math.min(1_000, config.timeouts.headersMs),
    keepAliveTimeout: config.timeouts.keepAliveMs,
    maxHeaderSize: 32 * 1024,
    // Two Authorization headers then read as one malformed value instead of the first silently winning.
    joinDuplicateHeaders: true,
    // The pipeline refuses an HTTP/1.1 request without Host itself, with HSTS and a body like any answer.
    requireHostHeader: false,
  });
  server.timeout = config.timeouts.idleMs;
  const stopCertificates = certificates.onChange((pair) => server.setSecureContext(secureContextOptions({ ...pair, clientCa })));
  certificates.start(log);
  server.on('tlsClientError', (err) => log.debug({ reason: err.message }, 'TLS handshake failed'));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => handleClientError(err, socket, config.tls.hstsMaxAge, log));
  const connectionLimit = limitConnections(server, { max: config.maxConnections, log, hstsMaxAge: config.tls.hstsMaxAge });

  // A CA validating the gateway's names (ACME): TLS-ALPN-01 on this listener, HTTP-01 on its own.
  const challenges = certificates.challenges;
  const stopAlpn = challenges ? answerAlpnChallenges(server, challenges) : () => undefined;
  const stopAcmeSync = isAcmeSource(certificates) && config.workers > 1 ? syncAcmeChallenges(certificates) : () => undefined;
  // Opened before listening: nothing may be awaited between accepting connections and handling
  // their requests (a request emitted with no handler would never be answered).
  const record = await openEventRecord({ config: config.events, log, metrics });
  const port = await listen(server, config.listen.host, config.listen.port, options.listening);
  const sync = config.manifestCacheMs > 0 && config.workers > 1 ? createManifestSync({ log }) : null;
  const auth = signIn.scheme;
  const forwarding = forwardingSettings(config, port, log, sync, auth.challenge);
  const stopSharing = forwarding.manifests && sync ? sync.receive(forwarding.manifests) : () => undefined;
  const web =
    config.ui !== null && setup.sessionKey !== null && signIn.basic !== null && signIn.authenticator !== null
      ? createWebUi({
          config: config.ui,
          key: setup.sessionKey,
          basic: signIn.basic,
          hashOf: signIn.authenticator.hashOf,
          access,
          upstream: forwarding.upstream,
          manifests: forwarding.manifests,
          record,
          publicUrl: config.publicUrl,
          log,
          metrics,
        })
      : null;
  const handler = connectionLimit.guard(createRequestHandler({
    auth,
    forwarding,
    log,
    hstsMaxAge: config.tls.hstsMaxAge,
    draining: () => draining,
    metrics,
    access,
    tokenEndpoint: signIn.tokenEndpoint ?? null,
    web,
    // Only /v2/ and /token requests make events here; the UI records its own, knowing what it did.
    events: (ctx) => {
      const event = eventFromRequest(ctx);
      if (event !== null) record.add(event);
    },
    certificateWaiting: () => certificates.waiting?.() ?? null,
  }));
  server.on('request', handler);
  // Answer `Expect: 100-continue` only once the credentials are checked.
  server.on('checkContinue', handler);
  const acmeHttp = challenges && config.tls.acme?.httpListen && !options.listening
    ? await startHttpChallengeListener({ ...config.tls.acme.httpListen, keyAuthorization: challenges.keyAuthorization, httpsPort: config.tls.acme.httpsPort === 443 ? null : config.tls.acme.httpsPort })
    : null;
  if (config.auth === 'upstream') {
    log.info({ listen: `${config.listen.host}:${port}`, upstream: forwarding.upstream.origin, auth: 'upstream' }, 'registry-gateway listening');
    // Said at every start: whoever reads the log must know that the gateway lets every request through.
    log.warn(
      { auth: 'upstream', upstream: forwarding.upstream.origin, manifestCache: 'off' },
      `--auth upstream: the gateway does not authenticate; it passes credentials on, and the registry at ${forwarding.upstream.origin} must sign users in and decide who may pull and push (its own htpasswd or token auth); the manifest cache is off, since the gateway cannot tell who may read a copy`,
    );
  } else {
    const token = config.token === null ? {} : { auth: 'token', tokenService: config.token.service };
    log.info({ listen: `${config.listen.host}:${port}`, upstream: forwarding.upstream.origin, users: setup.users.size, access: config.access?.file ?? null, ...token }, 'registry-gateway listening');
  }
  if (config.auth !== 'upstream' && setup.users.size === 0) {
    log.warn(
      { htpasswd: config.htpasswdFile },
      `the htpasswd file has no users: ${config.auth === 'token' ? 'nobody can log in (requests without credentials get what the access file grants @anonymous)' : 'every registry request will be refused'}; add one with ${addUserHint(config.htpasswdFile!)}; the gateway takes it up without a restart`,
    );
  }

  const close = async (closing: CloseOptions = {}): Promise<void> => {
    draining = true;
    access?.close();
    stopCertificates();
    stopAlpn();
    stopAcmeSync();
    await acmeHttp?.close();
    certificates.close();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Connections become idle as their responses finish; close each as soon as it is.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.timeouts.shutdownMs).unref());
    await Promise.race([closed, deadline]);
    clearInterval(sweep);
    server.closeAllConnections();
    await closed;
    forwarding.upstream.close();
    stopSharing();
    await signIn.close();
    // The primary owns the record: it writes what the workers still send until they are gone.
    await closing.workersGone;
    await record.close();
  };

  const reload = async (): Promise<boolean> => {
    const [certOk, usersOk, accessOk] = await Promise.all([certificates.reload(), signIn.reload(), access?.reload() ?? true]);
    return certOk && usersOk && accessOk;
  };

  return {
    url: `https://${displayHost(config.listen.host)}:${port}`,
    port,
    server,
    authenticator: signIn.authenticator,
    reload,
    close,
    metrics: metrics && scrapeable(metrics, server, signIn.authenticator),
  };
}

function scrapeable(metrics: GatewayMetrics, server: https.Server, authenticator: Authenticator | null): NonNullable<RunningGateway['metrics']> {
  const connections = () => new Promise<number>((resolve) => server.getConnections((err, count) => resolve(err ? Number.NaN : count)));
  return {
    samples: async () => metrics.samples({ auth: authenticator?.stats() ?? { verifications: 0, cacheHits: 0 }, connections: await connections() }),
    render: (samples) => metrics.render(samples),
  };
}
