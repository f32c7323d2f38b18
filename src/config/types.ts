// The configuration of `serve` is data: settings and the paths of the files they name. Reading
// those files (certificates, htpasswd, access file) belongs to the modules that own them; start-up
// (server/resources.ts) does it, so that their problems are reported with these.

/**
 * Who signs users in. `basic`: the gateway, against its htpasswd file. `token`: the gateway too, with
 * bearer tokens it issues itself at /token (anonymous pulls where the access file allows them).
 * `upstream`: the registry behind it (its own htpasswd or token auth); the gateway checks nothing
 * and passes credentials on.
 */
export type AuthMode = 'basic' | 'token' | 'upstream';
export const AUTH_MODES: readonly AuthMode[] = ['basic', 'token', 'upstream'];

/** Bearer tokens (`--auth token`). */
export interface TokenConfig {
  /** `service` of the challenge, `iss` and `aud` of the tokens. */
  readonly service: string;
  /** The signing key (PEM); made on first start when missing. */
  readonly keyFile: string;
  readonly accessTtlS: number;
  readonly refreshTtlS: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Timeouts {
  /** Time allowed for a client to send complete request headers (slowloris guard). */
  readonly headersMs: number;
  /** A client connection with no traffic in either direction for this long is closed. */
  readonly idleMs: number;
  /** Idle keep-alive connections between requests are closed after this. */
  readonly keepAliveMs: number;
  /** Connecting to the upstream, and waiting for its response headers. */
  readonly upstreamMs: number;
  /** How long in-flight requests may run on after SIGTERM before they are cut. */
  readonly shutdownMs: number;
}

/** The validated, frozen configuration of `serve`. */
export interface Config {
  readonly listen: { readonly host: string; readonly port: number };
  readonly upstream: URL;
  readonly tls: {
    readonly certFile: string;
    readonly keyFile: string;
    /** CA that client certificates must be signed by (mutual TLS), or null. */
    readonly clientCaFile: string | null;
    /**
     * Set when both certificate paths are left at their defaults: a private CA and a certificate
     * are made there when neither file exists. Null: the files must exist as given.
     */
    readonly autoCertificate: AutoCertificateSettings | null;
    /** Set with `--acme`: the certificate comes from an ACME CA. */
    readonly acme: AcmeSettings | null;
    /** Strict-Transport-Security max-age in seconds; 0 sends no header. */
    readonly hstsMaxAge: number;
  };
  readonly auth: AuthMode;
  /** Set with `--auth token`. */
  readonly token: TokenConfig | null;
  /** The users' file; null with `--auth upstream`, where the gateway keeps no users. */
  readonly htpasswdFile: string | null;
  readonly realm: string;
  /** The access file; null: every user may do everything (always null with `--auth upstream`: the registry decides). */
  readonly access: { readonly file: string } | null;
  /** Repeated failed logins for one user from one address wait before the next is checked. */
  readonly loginThrottle: {
    /** Failures before waits begin; 0: no throttling. */
    readonly freeFailures: number;
    readonly maxDelayMs: number;
  };
  /** Origin clients use (`https://registry.example.com`), or null: rewritten URLs are then relative. */
  readonly publicUrl: URL | null;
  /** The port clients reach the gateway on when it is not the listen port (a container's published port), or null. */
  readonly publishedPort: number | null;
  readonly logLevel: LogLevel;
  /** Where /metrics is served (plain HTTP), or null: metrics off. */
  readonly metricsListen: { readonly host: string; readonly port: number } | null;
  /** Client connections one process holds (0: no limit); idle ones make way for new ones. */
  readonly maxConnections: number;
  /** How long a manifest the upstream served may be answered again from memory; 0: never (always 0 with `--auth upstream`). */
  readonly manifestCacheMs: number;
  /** Processes serving the port (1: no cluster). */
  readonly workers: number;
  /** The web UI at `/`; null: off (always with `--auth upstream`). */
  readonly ui: UiConfig | null;
  /** The record of events, and the webhooks they go to. */
  readonly events: EventsConfig;
  readonly timeouts: Timeouts;
}

/** The web UI (`--ui`). */
export interface UiConfig {
  /** The secret that signs session cookies; made on first start when missing. */
  readonly sessionKeyFile: string;
  readonly sessionTtlS: number;
}

/** The gateway's record of pushes, deletes and refusals, and where they are sent. */
export interface EventsConfig {
  readonly file: string;
  readonly maxEvents: number;
  readonly maxAgeMs: number;
  readonly webhooks: readonly URL[];
  readonly webhookSecret: string | null;
  /** Events waiting per webhook before the oldest are dropped. */
  readonly webhookQueue: number;
}

/** A certificate from an ACME CA (`--acme`), kept under the certs folder and renewed by the gateway. */
export interface AcmeSettings {
  /** The CA's RFC 8555 directory. */
  readonly directoryUrl: string;
  readonly email: string | null;
  /** The names the certificate is for, the first one its subject. */
  readonly domains: readonly string[];
  /** PEM CA to trust for the ACME server's own HTTPS; null: the system's. */
  readonly caCertFile: string | null;
  readonly eab: { readonly kid: string; readonly hmacKey: string } | null;
  /** Where HTTP-01 challenges are answered (and everything else redirected to https); null: TLS-ALPN-01 only. */
  readonly httpListen: { readonly host: string; readonly port: number } | null;
  /** Where the account key and the certificates are kept (certs/acme). */
  readonly folder: string;
  /** The port clients reach the gateway's HTTPS on, for redirects from the HTTP listener. */
  readonly httpsPort: number;
}

/** What the gateway puts in a certificate it makes itself (see tls/auto.ts). */
export interface AutoCertificateSettings {
  readonly publicUrl: URL | null;
  /** `--tls-san` entries as given: names and addresses (checked when the certificate is made). */
  readonly extraSans: readonly string[];
  /** The port clients use, for the trust paths (`certs.d/HOST:PORT`): see ClientAddress.port. */
  readonly port: number;
  /** `--ca-domain` suffixes (checked) the new CA may sign for besides the certificate's names. */
  readonly caDomains: readonly string[];
}

/**
 * How clients reach the gateway: the names its certificate must cover (--public-url's host and the
 * --tls-san entries) and the port they connect to, which the trust instructions name.
 */
export interface ClientAddress {
  readonly publicUrl: URL | null;
  /** How a problem names --public-url: `--public-url`, `GATEWAY_PUBLIC_URL` or both. */
  readonly publicUrlSource: string;
  /** `--tls-san` entries, trimmed, empty ones left out (checked by start-up, which names the option). */
  readonly extraSans: readonly string[];
  readonly extraSansSource: string;
  /** --public-url's port (443 when it has none), else --published-port, else the listen port. */
  readonly port: number;
}

/** A file option: its path, and how a problem with it names the option (flag, variable, or both). */
export interface FileOption {
  readonly file: string;
  readonly source: string;
}

/** The files start-up reads, known even when other options are wrong, so that every problem is reported at once. */
export interface ConfigFiles {
  readonly cert: FileOption;
  readonly key: FileOption;
  readonly clientCa: FileOption | null;
  /** As Config.tls.autoCertificate. */
  readonly autoCertificate: AutoCertificateSettings | null;
  /** As Config.tls.acme. */
  readonly acme: AcmeSettings | null;
  /** The names and port clients use, which the certificate must cover. */
  readonly clientAddress: ClientAddress;
  /** Null with `--auth upstream`: no users are read. */
  readonly htpasswd: FileOption | null;
  readonly access: FileOption | null;
  /** The token signing key; set with `--auth token`. */
  readonly tokenKey: FileOption | null;
  /** The web UI's session secret; set when the UI is on. */
  readonly sessionKey: FileOption | null;
}

/** Flags and environment, parsed and checked: the config (null when anything is wrong), the files it names, and every problem found. */
export interface ParsedConfig {
  readonly config: Config | null;
  readonly files: ConfigFiles;
  readonly problems: readonly string[];
}
