// The web UI's options (`--ui`, its sessions) and the record of events with its webhooks, parsed
// and checked. Every problem names its option; a setting that would be silently ignored is refused.

import { dirname, join } from 'node:path';
import type { OptionName, ResolvedOption } from './options.js';
import type { AuthMode, EventsConfig, UiConfig } from './types.js';
import { parseCount, parseNonNegativeSeconds, parseTokenTtl } from './validate.js';

type Values = Readonly<Record<OptionName, ResolvedOption>>;

/**
 * Where the gateway keeps what it makes for itself unless told otherwise: the certificate's
 * folder (certs/), which already holds its keys, so one folder to mount and to back up.
 */
export function stateFolderOf(values: Values): string {
  return dirname(values['tls-cert'].value!);
}

const ON = /^(on|true|yes|1)$/i;
const OFF = /^(off|false|no|0)$/i;

/**
 * The UI's settings; null when it is off; undefined when something is wrong (problems pushed).
 * Off by itself with `--auth upstream`: the gateway has no users to sign in there.
 */
export function uiSettings(values: Values, auth: AuthMode | null, stateFolder: string, problems: string[]): UiConfig | null | undefined {
  const label = (name: OptionName) => values[name].source;
  const text = values.ui.value ?? 'on';
  if (!ON.test(text.trim()) && !OFF.test(text.trim())) {
    problems.push(`${label('ui')}: "${text}" is neither on nor off`);
    return undefined;
  }
  const on = ON.test(text.trim());
  if (auth === 'upstream') {
    if (on && !values.ui.isDefault) {
      problems.push(`${label('ui')} on cannot be used with --auth upstream: the web UI signs users in against --htpasswd, and in that mode the gateway has no users; remove it, or use --auth basic or token`);
      return undefined;
    }
    return null;
  }
  const sessionOptions = (['session-key', 'session-ttl'] as const).filter((name) => !values[name].isDefault);
  if (!on) {
    if (sessionOptions.length > 0) {
      problems.push(`${sessionOptions.map(label).join(', ')} only ${sessionOptions.length === 1 ? 'applies' : 'apply'} with the web UI on; remove ${sessionOptions.length === 1 ? 'it' : 'them'}, or drop --no-ui`);
      return undefined;
    }
    return null;
  }
  const ttl = parseTokenTtl(values['session-ttl'].value!, 30 * 24 * 3600);
  if (!ttl.ok) {
    problems.push(`${label('session-ttl')}: ${ttl.problem}`);
    return undefined;
  }
  const keyFile = values['session-key'].value ?? join(stateFolder, 'session.key');
  if (keyFile.trim() === '') {
    problems.push(`${label('session-key')}: an empty path; give a file for the session secret, e.g. certs/session.key`);
    return undefined;
  }
  return Object.freeze({ sessionKeyFile: keyFile, sessionTtlS: ttl.value });
}

/** The record's settings and the webhooks; null when something is wrong (problems pushed). */
export function eventsSettings(values: Values, stateFolder: string, problems: string[]): EventsConfig | null {
  const label = (name: OptionName) => values[name].source;
  const before = problems.length;
  const file = values['events-file'].value ?? join(stateFolder, 'events.jsonl');
  if (file.trim() === '') problems.push(`${label('events-file')}: an empty path; give a file for the record of events, e.g. data/events.jsonl`);
  const maxEvents = parseCount(values['events-max'].value!, 10_000_000);
  if (!maxEvents.ok || maxEvents.value === 0) problems.push(`${label('events-max')}: ${maxEvents.ok ? '0 would keep no events' : maxEvents.problem}; give a count from 1, e.g. 10000`);
  const maxAge = parseNonNegativeSeconds(values['events-max-age'].value!);
  if (!maxAge.ok || maxAge.value === 0) problems.push(`${label('events-max-age')}: ${maxAge.ok ? '0 would keep no events' : maxAge.problem}; give seconds, e.g. 7776000 (90 days)`);
  const queue = parseCount(values['webhook-queue'].value!, 1_000_000);
  if (!queue.ok || queue.value === 0) problems.push(`${label('webhook-queue')}: ${queue.ok ? '0 would keep no event for a webhook that is down' : queue.problem}; give a count from 1, e.g. 1000`);
  const webhooks = webhookUrls(values.webhook.value, label('webhook'), problems);
  const secret = values['webhook-secret'].value;
  if (secret !== null && webhooks.length === 0) problems.push(`${label('webhook-secret')} only applies with --webhook; remove it, or add --webhook URL`);
  if (secret !== null && secret.length < 16) problems.push(`${label('webhook-secret')}: at least 16 characters, so that a receiver's check of the signature means something (e.g. openssl rand -hex 32)`);
  if (problems.length > before || !maxEvents.ok || !maxAge.ok || !queue.ok) return null;
  return Object.freeze({
    file,
    maxEvents: maxEvents.value,
    maxAgeMs: maxAge.value * 1000,
    webhooks: Object.freeze(webhooks),
    webhookSecret: secret,
    webhookQueue: queue.value,
  });
}

/** Comma-separated http(s) URLs, each checked. */
function webhookUrls(text: string | null, source: string, problems: string[]): URL[] {
  if (text === null) return [];
  const urls: URL[] = [];
  for (const entry of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    let url: URL | null = null;
    try {
      url = new URL(entry);
    } catch {
      // reported below
    }
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      problems.push(`${source}: "${entry}" is not an http:// or https:// URL (e.g. https://ci.example.com/hooks/registry)`);
    } else if (url.username !== '' || url.password !== '') {
      problems.push(`${source}: "${url.host}": credentials in a webhook URL would be logged with it; use --webhook-secret to sign deliveries instead`);
    } else {
      urls.push(url);
    }
  }
  return urls;
}
