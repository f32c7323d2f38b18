// The options of `serve`: one table, from which flag parsing, environment lookup and --help derive.

export interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  readonly value: string;
  readonly default: string | null;
  readonly help: string;
}

export const SERVE_OPTIONS = [
  { flag: 'listen', env: 'GATEWAY_LISTEN', value: 'HOST:PORT', default: '0.0.0.0:8443', help: 'address and port to serve HTTPS on ([::]:8443 for IPv6)' },
  { flag: 'upstream', env: 'GATEWAY_UPSTREAM', value: 'URL', default: 'http://127.0.0.1:5000', help: 'the plain-HTTP registry to forward to' },
  { flag: 'tls-cert', env: 'GATEWAY_TLS_CERT', value: 'FILE', default: 'certs/server.crt', help: 'PEM certificate, optionally followed by its chain' },
  { flag: 'tls-key', env: 'GATEWAY_TLS_KEY', value: 'FILE', default: 'certs/server.key', help: 'PEM private key of that certificate' },
  { flag: 'acme', env: 'GATEWAY_ACME', value: 'DIRECTORY', default: null, help: 'get the certificate from an ACME CA: letsencrypt, letsencrypt-staging, or an RFC 8555 directory URL; kept under the certs folder and renewed by itself (not with --tls-cert)' },
  { flag: 'acme-email', env: 'GATEWAY_ACME_EMAIL', value: 'ADDRESS', default: null, help: "with --acme: the account's contact address, for the CA's expiry and policy mail" },
  { flag: 'acme-domains', env: 'GATEWAY_ACME_DOMAINS', value: 'NAMES', default: null, help: "with --acme: comma-separated names for the certificate (default: --public-url's host)" },
  { flag: 'acme-ca-cert', env: 'GATEWAY_ACME_CA_CERT', value: 'FILE', default: null, help: "with --acme: PEM CA to trust for the ACME server's own HTTPS (a private CA such as step-ca or pebble)" },
  { flag: 'acme-eab-kid', env: 'GATEWAY_ACME_EAB_KID', value: 'KID', default: null, help: 'with --acme: external account binding key id, for CAs that need one (with --acme-eab-hmac-key)' },
  { flag: 'acme-eab-hmac-key', env: 'GATEWAY_ACME_EAB_HMAC_KEY', value: 'KEY', default: null, help: 'with --acme: external account binding HMAC key (base64url)' },
  { flag: 'acme-http-listen', env: 'GATEWAY_ACME_HTTP_LISTEN', value: 'HOST:PORT', default: null, help: 'with --acme: also answer HTTP-01 challenges on this plain-HTTP address (e.g. 0.0.0.0:80), which otherwise only redirects to https; without it TLS-ALPN-01 on the gateway\'s own port is used' },
  { flag: 'tls-client-ca', env: 'GATEWAY_TLS_CLIENT_CA', value: 'FILE', default: null, help: 'require client certificates signed by this CA (mutual TLS); basic auth still applies' },
  { flag: 'tls-san', env: 'GATEWAY_TLS_SANS', value: 'NAMES', default: null, help: 'extra comma-separated names/addresses clients use; a certificate the gateway made itself is re-issued from its CA to cover them' },
  { flag: 'ca-domain', env: 'GATEWAY_CA_DOMAIN', value: 'SUFFIXES', default: null, help: 'comma-separated DNS suffixes (e.g. example.com) a CA the gateway makes may also sign for, besides the certificate\'s own names' },
  { flag: 'hsts-max-age', env: 'GATEWAY_HSTS_MAX_AGE', value: 'SECONDS', default: '31536000', help: 'Strict-Transport-Security max-age on every response; 0 turns the header off' },
  { flag: 'auth', env: 'GATEWAY_AUTH', value: 'MODE', default: 'basic', help: 'who signs users in: basic = the gateway, against --htpasswd; token = the same users with bearer tokens the gateway issues at /token (anonymous pulls for what --access grants @anonymous; docker login stores a revocable refresh token, not the password); upstream = the registry itself (its htpasswd or token auth): the gateway checks no credentials, passes Authorization on and the registry\'s 401/403 and challenge back (realm moved onto the gateway), and has no --access and no manifest cache' },
  { flag: 'htpasswd', env: 'GATEWAY_HTPASSWD', value: 'FILE', default: './htpasswd', help: 'users, as written by Apache htpasswd (bcrypt, SHA-256/512 crypt, apr1 or {SHA}); not read with --auth upstream' },
  { flag: 'access', env: 'GATEWAY_ACCESS', value: 'FILE', default: null, help: 'who may pull, push and delete which repositories (YAML, reloaded on change); without it every user may do everything' },
  { flag: 'token-service', env: 'GATEWAY_TOKEN_SERVICE', value: 'NAME', default: null, help: "with --auth token: the service name of challenges and tokens (default: --public-url's host, else this machine's name); replicas sharing --token-key must share it" },
  { flag: 'token-key', env: 'GATEWAY_TOKEN_KEY', value: 'FILE', default: 'certs/token.key', help: 'with --auth token: the private key that signs tokens (PEM; EC P-256 made on first start, mode 0600); FILE.previous, when present, is still accepted (key rotation)' },
  { flag: 'token-ttl', env: 'GATEWAY_TOKEN_TTL', value: 'SECONDS', default: '300', help: 'with --auth token: lifetime of an access token' },
  { flag: 'refresh-token-ttl', env: 'GATEWAY_REFRESH_TOKEN_TTL', value: 'SECONDS', default: '7776000', help: 'with --auth token: lifetime of the refresh token docker login stores (default 90 days); a new password or a removed user ends it sooner' },
  { flag: 'ui', env: 'GATEWAY_UI', value: 'on|off', default: 'on', help: "the web UI at / (--no-ui: off): each user signs in with their htpasswd password and sees the repositories they may pull, with tags, sizes, platforms and who pushed them; off with --auth upstream, where the gateway has no users" },
  { flag: 'session-key', env: 'GATEWAY_SESSION_KEY', value: 'FILE', default: null, help: 'the secret that signs web UI sessions (default: session.key beside --tls-cert, so certs/session.key; made on first start, mode 0600); sessions last across restarts and --workers while it stays, and all end when it is replaced' },
  { flag: 'session-ttl', env: 'GATEWAY_SESSION_TTL', value: 'SECONDS', default: '43200', help: 'how long a web UI sign-in lasts (default 12 hours); a new password or a removed user ends it sooner' },
  { flag: 'events-file', env: 'GATEWAY_EVENTS_FILE', value: 'FILE', default: null, help: 'the record of every manifest push and delete and every refusal, naming the user (default: events.jsonl beside --tls-cert, so certs/events.jsonl; JSON lines, mode 0600, kept across restarts, written by one process for all --workers)' },
  { flag: 'events-max', env: 'GATEWAY_EVENTS_MAX', value: 'N', default: '10000', help: 'events kept in that record; older ones are dropped first' },
  { flag: 'events-max-age', env: 'GATEWAY_EVENTS_MAX_AGE', value: 'SECONDS', default: '7776000', help: 'events older than this are dropped (default 90 days)' },
  { flag: 'webhook', env: 'GATEWAY_WEBHOOK', value: 'URL', default: null, help: 'POST each push, delete and refusal to this URL as JSON (the registry\'s notification envelope, with the user); repeat the flag, or separate URLs with commas in the variable' },
  { flag: 'webhook-secret', env: 'GATEWAY_WEBHOOK_SECRET', value: 'TEXT', default: null, help: 'sign webhook bodies with HMAC-SHA256 in X-Registry-Gateway-Signature (prefer the variable: a flag shows in the process list)' },
  { flag: 'webhook-queue', env: 'GATEWAY_WEBHOOK_QUEUE', value: 'N', default: '1000', help: 'events waiting per webhook while it is unreachable; beyond that the oldest are dropped (counted in metrics and logged)' },
  { flag: 'realm', env: 'GATEWAY_REALM', value: 'TEXT', default: 'Registry Realm', help: 'realm of the Basic challenge' },
  { flag: 'login-attempts', env: 'GATEWAY_LOGIN_ATTEMPTS', value: 'N', default: '5', help: 'failed logins for one user from one address before each further attempt waits (1 s, doubling; 429 with Retry-After); 0 turns this off' },
  { flag: 'login-backoff-max', env: 'GATEWAY_LOGIN_BACKOFF_MAX', value: 'SECONDS', default: '300', help: 'longest such wait' },
  { flag: 'public-url', env: 'GATEWAY_PUBLIC_URL', value: 'URL', default: null, help: 'origin clients use, e.g. https://registry.example.com (default: rewritten URLs are relative)' },
  { flag: 'published-port', env: 'GATEWAY_PUBLISHED_PORT', value: 'N', default: null, help: "the port clients reach the gateway on when it differs from the listen port, e.g. a container's published port; used in the trust instructions (--public-url's port wins)" },
  { flag: 'manifest-cache-ttl', env: 'GATEWAY_MANIFEST_CACHE_TTL', value: 'SECONDS', default: '1', help: 'answer a manifest the registry served within this long from memory (pushes and deletes through the gateway are seen at once; changes made behind its back within this long); 0 = off' },
  { flag: 'workers', env: 'GATEWAY_WORKERS', value: 'N', default: 'auto', help: 'processes serving the port, like nginx worker_processes; auto = one per CPU but one (the registry needs a core), at least one' },
  { flag: 'metrics-listen', env: 'GATEWAY_METRICS_LISTEN', value: 'HOST:PORT', default: null, help: 'serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP, no auth: keep it on loopback or an internal network); off by default' },
  { flag: 'log-level', env: 'GATEWAY_LOG_LEVEL', value: 'LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent' },
  { flag: 'upstream-timeout', env: 'GATEWAY_UPSTREAM_TIMEOUT', value: 'SECONDS', default: '300', help: 'wait this long for the upstream to connect, answer or send more before giving up (504)' },
  { flag: 'headers-timeout', env: 'GATEWAY_HEADERS_TIMEOUT', value: 'SECONDS', default: '60', help: 'a client must send its whole request head within this long, or gets 408 (slowloris)' },
  { flag: 'max-connections', env: 'GATEWAY_MAX_CONNECTIONS', value: 'N', default: '1024', help: 'client connections one process holds; at the limit a new one replaces the longest-idle one, and is refused only when all are busy (a few more still get /healthz and /readyz); 0 = no limit' },
  { flag: 'idle-timeout', env: 'GATEWAY_IDLE_TIMEOUT', value: 'SECONDS', default: '300', help: 'close a client connection that sends and receives nothing for this long' },
  { flag: 'shutdown-timeout', env: 'GATEWAY_SHUTDOWN_TIMEOUT', value: 'SECONDS', default: '30', help: 'on SIGTERM, let in-flight requests finish for up to this long' },
] as const satisfies readonly OptionSpec[];

export type OptionName = (typeof SERVE_OPTIONS)[number]['flag'];

export function formatOptionsHelp(options: readonly OptionSpec[]): string {
  const rows = options.map((o) => [`--${o.flag} ${o.value}`, o.env, o.default === null ? '' : `(default ${o.default})`, o.help]);
  const width = (i: number) => Math.max(...rows.map((r) => r[i]!.length));
  const [w0, w1] = [width(0), width(1)];
  return rows
    .map((r) => `  ${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[3]} ${r[2]}`.trimEnd())
    .join('\n');
}

export interface ResolvedOption {
  readonly value: string | null;
  /** Where the value came from, as problems name it: `--listen`, `GATEWAY_LISTEN` or `--listen/GATEWAY_LISTEN`. */
  readonly source: string;
  readonly isDefault: boolean;
}

/** Flag wins over environment, environment over default. */
export function resolveOptionValues(
  flags: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): Record<OptionName, ResolvedOption> {
  const out = {} as Record<OptionName, ResolvedOption>;
  for (const o of SERVE_OPTIONS) {
    const fromFlag = flags[o.flag];
    const fromEnv = env[o.env];
    if (fromFlag !== undefined) out[o.flag] = { value: fromFlag, source: `--${o.flag}`, isDefault: false };
    else if (fromEnv !== undefined && fromEnv !== '') out[o.flag] = { value: fromEnv, source: o.env, isDefault: false };
    else out[o.flag] = { value: o.default, source: `--${o.flag}/${o.env}`, isDefault: true };
  }
  return out;
}
