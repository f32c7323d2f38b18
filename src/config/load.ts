// Flags + environment -> one validated, frozen Config. Every problem is collected and reported
// at once, each naming the flag or variable it came from, so a user fixes them in one pass.

import { parseArgs } from 'node:util';
import { formatAccessProblem, readAccessFile } from '../access/policy.js';
import { formatHtpasswdProblem, readHtpasswdFile } from '../auth/htpasswd.js';
import { GatewayError } from '../errors.js';
import { makeDefaultCertificateIfMissing, type GeneratedCertificate } from '../tls/auto.js';
import { loadClientCa, loadTlsFiles, unconstrainedCaWarning } from '../tls/load.js';
import { SERVE_OPTIONS, resolveOptionValues, type OptionName } from './options.js';
import type { Config } from './types.js';
import {
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

/** Parse the command line of `serve`; unknown flags are a usage error naming the flag. */
export function parseServeFlags(argv: string[]): { flags: Record<string, string | undefined>; help: boolean } {
  const options = Object.fromEntries(SERVE_OPTIONS.map((o) => [o.flag, { type: 'string' as const }]));
  try {
    const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    const { help, ...flags } = values;
    return { flags: flags as Record<string, string | undefined>, help: help === true };
  } catch (err) {
    throw new GatewayError('USAGE', `${(err as Error).message}; see registry-gateway serve --help`);
  }
}

export async function loadConfig(argv: string[], env: Readonly<Record<string, string | undefined>>, now = new Date()): Promise<Config> {
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

  const listen = take('listen', parseListen);
  const upstream = take('upstream', parseUpstream);
  const realm = take('realm', parseRealm);
  const publicUrl = take('public-url', parsePublicUrl);
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

  const certFile = values['tls-cert'].value!;
  const keyFile = values['tls-key'].value!;
  let generated: GeneratedCertificate | null = null;
  // A bad --ca-domain must not leave a CA on disk made without it.
  const caDomainsOk = values['ca-domain'].value === null || caDomains !== null;
  if (values['tls-cert'].isDefault && values['tls-key'].isDefault && caDomainsOk) {
    try {
      generated = await makeDefaultCertificateIfMissing({
        certFile,
        keyFile,
        publicUrl,
        extraSans: (values['tls-san'].value ?? '').split(','),
        port: publicUrl ? Number(publicUrl.port || 443) : (listen?.port ?? 8443),
        caDomains: caDomains ?? [],
      });
    } catch (err) {
      problems.push(`${label('tls-cert')}: no certificate at ${certFile}, and making one failed: ${(err as Error).message}`);
    }
  }
  const tls = await loadTlsFiles({ certFile, certSource: label('tls-cert'), keyFile, keySource: label('tls-key') }, now);
  problems.push(...tls.problems);
  const clientCaFile = values['tls-client-ca'].value;
  const clientCa = clientCaFile === null ? null : await loadClientCa(clientCaFile, label('tls-client-ca'));
  problems.push(...(clientCa?.problems ?? []));

  const htpasswdFile = values.htpasswd.value!;
  const htpasswd = await readHtpasswdFile(htpasswdFile);
  problems.push(...htpasswd.problems.map((p) => `${label('htpasswd')}: ${formatHtpasswdProblem(p)}`));
  const accessFile = values.access.value;
  const access = accessFile === null ? null : await readAccessFile(accessFile);
  problems.push(...(access?.problems ?? []).map((p) => `${label('access')}: ${formatAccessProblem(p)}`));

  if (problems.length > 0 || !listen || !upstream || !realm || !logLevel || !upstreamMs || !idleMs || !headersMs || !shutdownMs || hstsMaxAge === null || maxConnections === null || !workers || manifestCacheSeconds === null || freeFailures === null || !maxDelayMs || !tls.files) {
    throw new GatewayError('CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'})`, { problems });
  }

  return Object.freeze({
    listen: Object.freeze(listen),
    upstream,
    tls: Object.freeze({
      certFile,
      keyFile,
      cert: tls.files.cert,
      key: tls.files.key,
      clientCaFile,
      clientCa: clientCa?.pem ?? null,
      generated,
      hstsMaxAge,
      warnings: Object.freeze([unconstrainedCaWarning(tls.files.cert, certFile)].filter((w): w is string => w !== null)),
    }),
    htpasswdFile,
    users: htpasswd.users,
    realm,
    access: accessFile !== null && access?.policy ? Object.freeze({ file: accessFile, policy: access.policy }) : null,
    loginThrottle: Object.freeze({ freeFailures, maxDelayMs }),
    publicUrl,
    logLevel,
    metricsListen: metricsListen && Object.freeze(metricsListen),
    maxConnections,
    manifestCacheMs: manifestCacheSeconds * 1000,
    workers,
    timeouts: Object.freeze({ headersMs, idleMs, keepAliveMs: KEEP_ALIVE_TIMEOUT_MS, upstreamMs, shutdownMs }),
  });
}
