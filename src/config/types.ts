import type { AccessPolicy } from '../access/policy.js';
import type { HtpasswdUsers } from '../auth/types.js';
import type { GeneratedCertificate } from '../tls/auto.js';

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
    /** PEM text as read at start-up (leaf first, then any chain). */
    readonly cert: string;
    readonly key: string;
    /** CA that client certificates must be signed by (mutual TLS), or null. */
    readonly clientCaFile: string | null;
    readonly clientCa: string | null;
    /** Set when this start made the certificate itself (no certificate at the default paths). */
    readonly generated: GeneratedCertificate | null;
    /** Strict-Transport-Security max-age in seconds; 0 sends no header. */
    readonly hstsMaxAge: number;
    /** One-line warnings about the certificate in use, for the primary process to log at start. */
    readonly warnings: readonly string[];
  };
  readonly htpasswdFile: string;
  /** Users as parsed at start-up. */
  readonly users: HtpasswdUsers;
  readonly realm: string;
  /** The access file and its policy as read at start-up; null: every user may do everything. */
  readonly access: { readonly file: string; readonly policy: AccessPolicy } | null;
  /** Repeated failed logins for one user from one address wait before the next is checked. */
  readonly loginThrottle: {
    /** Failures before waits begin; 0: no throttling. */
    readonly freeFailures: number;
    readonly maxDelayMs: number;
  };
  /** Origin clients use (`https://registry.example.com`), or null: rewritten URLs are then relative. */
  readonly publicUrl: URL | null;
  readonly logLevel: LogLevel;
  /** Where /metrics is served (plain HTTP), or null: metrics off. */
  readonly metricsListen: { readonly host: string; readonly port: number } | null;
  /** Client connections one process holds (0: no limit); idle ones make way for new ones. */
  readonly maxConnections: number;
  /** How long a manifest the upstream served may be answered again from memory; 0: never. */
  readonly manifestCacheMs: number;
  /** Processes serving the port (1: no cluster). */
  readonly workers: number;
  readonly timeouts: Timeouts;
}
