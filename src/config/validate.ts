// Pure validators for single option values. Each returns the parsed value or a problem sentence
// that says what is wrong and what to do; the caller prefixes the flag and variable names.

import { availableParallelism } from 'node:os';
import { parseCaDomains } from './ca-domains.js';
import { AUTH_MODES, type AuthMode, type LogLevel } from './types.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(problem: string): Parsed<T> => ({ ok: false, problem });

export function parseListen(text: string): Parsed<{ host: string; port: number }> {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return bad(`"${text}" is not HOST:PORT; write e.g. 0.0.0.0:8443 or [::]:8443`);
  const port = Number(match[3]);
  if (port > 65535) return bad(`port ${port} is out of range; use 1-65535`);
  return ok({ host: match[1] ?? match[2]!, port });
}

/**
 * A TCP port clients connect to: a whole number from 1 to 65535. A host address before it
 * (`127.0.0.1:443`, as a compose file's published port may be written) is allowed and left out.
 */
export function parsePort(text: string): Parsed<number> {
  const match = /^(?:(?:\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[1]);
  if (match === null || port < 1 || port > 65535) return bad(`"${text}" is not a port; give a whole number from 1 to 65535, e.g. 443`);
  return ok(port);
}

function parseUrl(text: string): URL | null {
  try {
    return new URL(text.trim());
  } catch {
    return null;
  }
}

function hasOnlyOrigin(url: URL): boolean {
  return (url.pathname === '/' || url.pathname === '') && url.search === '' && url.hash === '';
}

export function parseUpstream(text: string): Parsed<URL> {
  const url = parseUrl(text);
  if (!url) return bad(`"${text}" is not a URL; write e.g. http://127.0.0.1:5000`);
  if (url.protocol !== 'http:') {
    return bad(`"${text}" must be an http:// URL: the gateway terminates TLS and speaks plain HTTP to the registry`);
  }
  if (url.username || url.password) return bad(`"${text}" must not hold credentials: the gateway never forwards any`);
  if (!hasOnlyOrigin(url)) return bad(`"${text}" must be an origin only (no path, query or fragment), e.g. http://registry:5000`);
  return ok(url);
}

export function parsePublicUrl(text: string): Parsed<URL> {
  const url = parseUrl(text);
  if (!url) return bad(`"${text}" is not a URL; write e.g. https://registry.example.com`);
  if (url.protocol !== 'https:') return bad(`"${text}" must be an https:// URL: clients reach the gateway over TLS`);
  if (url.username || url.password) return bad(`"${text}" must not hold credentials`);
  if (!hasOnlyOrigin(url)) return bad(`"${text}" must be an origin only (no path, query or fragment), e.g. https://registry.example.com`);
  return ok(url);
}

export function parseRealm(text: string): Parsed<string> {
  if (text.length === 0) return bad('the realm is empty; give a short name such as "Registry Realm"');
  if (/["\\\p{Cc}]/u.test(text)) return bad(`"${text}" must not contain quotes, backslashes or control characters`);
  return ok(text);
}

export function parseAuthMode(text: string): Parsed<AuthMode> {
  const mode = text.trim().toLowerCase() as AuthMode;
  if (AUTH_MODES.includes(mode)) return ok(mode);
  return bad(`"${text}" is not a sign-in mode; use basic (the gateway checks the users of --htpasswd), token (the same users, with bearer tokens: public pulls, logins that store no password) or upstream (the registry behind it signs users in itself)`);
}

/** A token service name: what challenges name and tokens' `aud` and `iss` hold. */
export function parseTokenService(text: string): Parsed<string> {
  const name = text.trim();
  if (name === '' || name.length > 255 || !/^[\x21-\x7e]+$/.test(name) || /["\\]/.test(name)) {
    return bad(`"${text}" is not a token service name: give 1 to 255 printable characters without spaces, quotes or backslashes, e.g. registry.example.com`);
  }
  return ok(name);
}

/** A token lifetime: whole seconds, from 10 s to `max`. */
export function parseTokenTtl(text: string, max: number): Parsed<number> {
  const trimmed = text.trim();
  const seconds = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!(seconds >= 10 && seconds <= max)) return bad(`"${text}" is not a lifetime in whole seconds from 10 to ${max}`);
  return ok(seconds);
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function parseLogLevel(text: string): Parsed<LogLevel> {
  const level = text.trim().toLowerCase() as LogLevel;
  return LOG_LEVELS.includes(level) ? ok(level) : bad(`"${text}" is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
}

/** A duration in seconds (fractions allowed), returned in milliseconds. */
export function parseSeconds(text: string): Parsed<number> {
  const seconds = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
    return bad(`"${text}" is not a positive number of seconds`);
  }
  return ok(Math.round(seconds * 1000));
}

/** Whole seconds, zero allowed (for settings where 0 means off). */
export function parseNonNegativeSeconds(text: string): Parsed<number> {
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return bad(`"${text}" is not a whole number of seconds (0 or more)`);
  return ok(Number(trimmed));
}

/** A whole number from 0 to max (for counts where 0 means off). */
export function parseCount(text: string, max: number): Parsed<number> {
  const trimmed = text.trim();
  const count = Number(trimmed);
  if (!/^\d{1,10}$/.test(trimmed) || count > max) return bad(`"${text}" is not a whole number from 0 to ${max}`);
  return ok(count);
}

const MAX_WORKERS = 64;

/**
 * `auto` or a count. auto is one process per CPU but one, and at least one: the registry runs on
 * the same machine and needs a core of its own. Measured on 2 cores (bench/), one gateway process
 * beat two at every measure, pulls, pushes and small requests alike, in half the memory.
 */
export function parseWorkers(text: string, cpus = availableParallelism()): Parsed<number> {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'auto') return ok(Math.max(1, Math.min(cpus - 1, MAX_WORKERS)));
  const count = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || count < 1 || count > MAX_WORKERS) return bad(`"${text}" is not auto or a number of processes from 1 to ${MAX_WORKERS}`);
  return ok(count);
}

/** Comma-separated DNS suffixes a CA the gateway makes may also sign for (`--ca-domain`). */
export function parseCaDomainList(text: string): Parsed<string[]> {
  const { domains, problems } = parseCaDomains([text]);
  return problems.length === 0 ? ok(domains) : bad(problems.join('; '));
}
