// Flags + environment -> one validated, frozen Config. Every problem is collected, each naming the
// flag or variable it came from, so a user fixes them in one pass. Nothing is read from disk here:
// start-up (server/resources.ts) reads the files named, adds their problems to these and reports
// them all at once.

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { GatewayError } from '../errors.js';
import { acmeSettings } from './acme-settings.js';
import { eventsSettings, stateFolderOf, uiSettings } from './web-settings.js';
import { SERVE_OPTIONS, resolveOptionValues, type OptionName } from './options.js';
import type { AutoCertificateSettings, ClientAddress, ConfigFiles, FileOption, ParsedConfig, TokenConfig } from './types.js';
import {
  parseAuthMode,
  parseListen,
  parseLogLevel,
  parseNonNegativeSeconds,
  parsePublicUrl,
  parseRealm,
  parseSeconds,
  parseUpstream,
  parseWorkers,
  parseCount,
  parseCaDomainList,
  parsePort,
  parseTokenService,
  parseTokenTtl,
  type Parsed,
} from './validate.js';

const KEEP_ALIVE_TIMEOUT_MS = 75_000;
/** Far above what one process can serve; a larger number is a typo. */
const MAX_CONNECTIONS = 1_000_000;

const ANY_ADDRESS = new Set(['0.0.0.0', '::']);

/** Whether two listen addresses would collide: same port on the same or an any-address host. */
function sharesPort(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  return a.port === b.port && a.port !== 0 && (a.host === b.host || ANY_ADDRESS.has(a.host) || ANY_ADDRESS.has(b.host));
}

/**
 * The port clients connect to, as the trust instructions name it (`certs.d/HOST:PORT`): the
 * --public-url's (443 for an https URL without one), else --published-port (a container's
 * published port), else the port the gateway listens on.
 */
export function clientPort(publicUrl: URL | null, publishedPort: number | null, listenPort: number): number {
  if (publicUrl !== null) return Number(publicUrl.port || 443);
  return publishedPort ?? listenPort;
}

/** Options that may be given more than once. */
const REPEATABLE: ReadonlySet<string> = new Set(['webhook']);

/** `--no-ui` is `--ui off`, and a bare `--ui` is `--ui on`. */
function switchesAsValues(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    if (arg === '--no-ui') return '--ui=off';
    if (arg === '--ui' && !/^(on|off|true|false|yes|no|1|0)$/i.test(argv[i + 1] ?? '')) return '--ui=on';
    return arg;
  });
}

/** Parse the command line of `serve`; unknown flags are a usage error naming the flag. */
export function parseServeFlags(argv: string[]): { flags: Record<string, string | undefined>; help: boolean } {
  const options = Object.fromEntries(SERVE_OPTIONS.map((o) => [o.flag, { type: 'string' as const, multiple: REPEATABLE.has(o.flag) }]));
  try {
    const { values } = parseArgs({ args: switchesAsValues(argv), options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    const { help, ...given } = values;
    // A repeated option arrives as a list; it is one value, comma-separated, like its variable.
    const flags = Object.fromEntries(Object.entries(given).map(([name, value]) => [name, Array.isArray(value) ? value.join(',') : value]));
    return { flags: flags as Record<string, string | undefined>, help: help === true };
  } catch (err) {
    throw new GatewayError('USAGE', `${(err as Error).message}; see registry-gateway serve --help`);
  }
}

/** Parse and check flags and environment (flag wins); throws only for an unknown flag (USAGE). */
export function parseConfig(argv: string[], env: Readonly<Record<string, string | undefined>>): ParsedConfig {
  const { flags } = parseServeFlags(argv);
  const values = resolveOptionValues(flags, env);
  const problems: string[] = [];
  const label = (name: OptionName) => values[name].source;
  const take = <T>(name: OptionName, parse: (text: string) => Parsed<T>): T | null => {
    const text = values[name].value;
    if (text === null) return null;
    const parsed = parse(text);
    if (parsed.ok) return parsed.value;
    problems.push(`${label(name)}: ${parsed.problem}`);
    return null;
  };
  const fileOption = (name: OptionName): FileOption | null => {
    const file = values[name].value;
    return file === null ? null : Object.freeze({ file, source: label(name) });
  };

  const auth = take('auth', parseAuthMode);
  const listen = take('listen', parseListen);
  const upstream = take('upstream', parseUpstream);
  const realm = take('realm', parseRealm);
  const publicUrl = take('public-url', parsePublicUrl);
  const publishedPort = take('published-port', parsePort);
  const logLevel = take('log-level', parseLogLevel);
  const metricsListen = take('metrics-listen', parseListen);
  if (listen && metricsListen && sharesPort(listen, metricsListen)) {
    problems.push(`${label('metrics-listen')}: ${metricsListen.host}:${metricsListen.port} is where the gateway itself listens (--listen); give metrics a port of their own, e.g. 127.0.0.1:9443`);
  }
  const upstreamMs = take('upstream-timeout', parseSeconds);
  const idleMs = take('idle-timeout', parseSeconds);
  const maxConnections = take('max-connections', (text) => parseCount(text, MAX_CONNECTIONS));
  const headersMs = take('headers-timeout', parseSeconds);
  const shutdownMs = take('shutdown-timeout', parseSeconds);
  const hstsMaxAge = take('hsts-max-age', parseNonNegativeSeconds);
  const workers = take('workers', parseWorkers);
  const manifestCacheSeconds = take('manifest-cache-ttl', parseNonNegativeSeconds);
  const freeFailures = take('login-attempts', (text) => parseCount(text, 1000));
  const maxDelayMs = take('login-backoff-max', parseSeconds);

  const caDomains = take('ca-domain', parseCaDomainList);
  const tokenMode = auth === 'token';
  const token = tokenSettings(values, take, tokenMode, publicUrl, problems);

  // With the registry signing users in, the gateway knows users only by what they claim: it can
  // neither decide who may do what nor tell whose manifest a copy in memory is.
  const upstreamAuth = auth === 'upstream';
  if (upstreamAuth && values.access.value !== null) {
    problems.push(`${label('access')} cannot be used with ${label('auth')} upstream: in that mode the registry decides who may pull, push and delete (the gateway verifies nobody); remove ${label('access')}, or use --auth basic`);
  }
  if (upstreamAuth && !values['manifest-cache-ttl'].isDefault && manifestCacheSeconds !== null && manifestCacheSeconds > 0) {
    problems.push(`${label('manifest-cache-ttl')} cannot be used with ${label('auth')} upstream: the gateway would answer one user's manifests to anyone, not knowing who may read them; remove it or set 0 (the cache is off in that mode)`);
  }

  // Both certificate paths left at their defaults: start-up makes a CA and certificate there when
  // neither exists. A bad --ca-domain must not leave a CA on disk made without it.
  const caDomainsOk = values['ca-domain'].value === null || caDomains !== null;
  const clientAddress: ClientAddress = Object.freeze({
    publicUrl,
    publicUrlSource: label('public-url'),
    extraSans: Object.freeze((values['tls-san'].value ?? '').split(',').map((name) => name.trim()).filter((name) => name !== '')),
    extraSansSource: label('tls-san'),
    port: clientPort(publicUrl, publishedPort, listen?.port ?? 8443),
  });
  const acme = acmeSettings(values, publicUrl, clientAddress.port, problems);
  const ui = uiSettings(values, auth, stateFolderOf(values), problems);
  const events = eventsSettings(values, stateFolderOf(values), problems);
  const autoCertificate: AutoCertificateSettings | null =
    values.acme.value === null && values['tls-cert'].isDefault && values['tls-key'].isDefault && caDomainsOk
      ? Object.freeze({
          publicUrl,
          extraSans: clientAddress.extraSans,
          port: clientAddress.port,
          caDomains: Object.freeze(caDomains ?? []),
        })
      : null;
  const files: ConfigFiles = Object.freeze({
    cert: fileOption('tls-cert')!,
    key: fileOption('tls-key')!,
    clientCa: fileOption('tls-client-ca'),
    autoCertificate,
    acme,
    clientAddress,
    htpasswd: upstreamAuth ? null : fileOption('htpasswd')!,
    access: upstreamAuth ? null : fileOption('access'),
    tokenKey: tokenMode ? fileOption('token-key') : null,
    sessionKey: ui ? Object.freeze({ file: ui.sessionKeyFile, source: label('session-key') }) : null,
  });

  if (problems.length > 0 || !auth || !listen || !upstream || !realm || !logLevel || !upstreamMs || !idleMs || !headersMs || !shutdownMs || hstsMaxAge === null || maxConnections === null || !workers || manifestCacheSeconds === null || freeFailures === null || !maxDelayMs || (tokenMode && token === null) || ui === undefined || events === null) {
    return { config: null, files, problems };
  }

  const config = Object.freeze({
    listen: Object.freeze(listen),
    upstream,
    tls: Object.freeze({
      certFile: files.cert.file,
      keyFile: files.key.file,
      clientCaFile: files.clientCa?.file ?? null,
      autoCertificate,
      acme,
      hstsMaxAge,
    }),
    auth,
    token,
    htpasswdFile: files.htpasswd?.file ?? null,
    realm,
    access: files.access === null ? null : Object.freeze({ file: files.access.file }),
    loginThrottle: Object.freeze({ freeFailures, maxDelayMs }),
    publicUrl,
    publishedPort,
    logLevel,
    metricsListen: metricsListen && Object.freeze(metricsListen),
    maxConnections,
    manifestCacheMs: upstreamAuth ? 0 : manifestCacheSeconds * 1000,
    workers,
    ui,
    events,
    timeouts: Object.freeze({ headersMs, idleMs, keepAliveMs: KEEP_ALIVE_TIMEOUT_MS, upstreamMs, shutdownMs }),
  });
  return { config, files, problems };
}

/**
 * The token settings of `--auth token`, or null (with the problems pushed). The token options in
 * another mode are refused: a setting silently ignored would look like one in force.
 */
function tokenSettings(
  values: ReturnType<typeof resolveOptionValues>,
  take: <T>(name: OptionName, parse: (text: string) => Parsed<T>) => T | null,
  tokenMode: boolean,
  publicUrl: URL | null,
  problems: string[],
): TokenConfig | null {
  const names = ['token-service', 'token-key', 'token-ttl', 'refresh-token-ttl'] as const;
  if (!tokenMode) {
    const given = names.filter((name) => !values[name].isDefault);
    if (given.length > 0) problems.push(`${given.map((name) => values[name].source).join(', ')} only apply with --auth token; remove ${given.length === 1 ? 'it' : 'them'}, or set --auth token`);
    return null;
  }
  const service = values['token-service'].value === null ? publicUrl?.host ?? hostname() : take('token-service', parseTokenService);
  const accessTtlS = take('token-ttl', (text) => parseTokenTtl(text, 24 * 3600));
  const refreshTtlS = take('refresh-token-ttl', (text) => parseTokenTtl(text, 10 * 365 * 24 * 3600));
  if (service === null || accessTtlS === null || refreshTtlS === null) return null;
  if (refreshTtlS < accessTtlS) {
    problems.push(`${values['refresh-token-ttl'].source} (${refreshTtlS} s) is shorter than ${values['token-ttl'].source} (${accessTtlS} s); a refresh token must outlive the access tokens it gets`);
    return null;
  }
  return Object.freeze({ service, keyFile: values['token-key'].value!, accessTtlS, refreshTtlS });
}

/** The error every configuration problem ends in: all of them, at once. */
export function invalidConfiguration(problems: readonly string[]): GatewayError {
  return new GatewayError('CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'})`, { problems });
}
