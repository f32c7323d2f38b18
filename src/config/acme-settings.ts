// The ACME options (`--acme` and its companions), parsed and checked together: a directory, the
// names, the contact, trust for a private ACME server, external account binding and the HTTP-01
// listener. Every problem names its option; options given without --acme are refused, not ignored.

import { dirname, join } from 'node:path';
import type { ResolvedOption, OptionName } from './options.js';
import type { AcmeSettings } from './types.js';
import { parseListen } from './validate.js';

/** The directories known by name. */
export const ACME_DIRECTORIES: Readonly<Record<string, string>> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

const ACME_OPTIONS = ['acme-email', 'acme-domains', 'acme-ca-cert', 'acme-eab-kid', 'acme-eab-hmac-key', 'acme-http-listen'] as const;
// A DNS name a public CA can issue for: labels of letters, digits and hyphens, at least two labels.
const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// A last label of digits only is no top-level domain: 192.0.2.10 passes DNS_NAME, and is an IP address.
const NUMERIC_TLD = /\.[0-9]+$/;
const EMAIL = /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;"]+$/;

/**
 * The ACME settings, or null without --acme (problems pushed for ACME options given alone, and
 * for anything wrong). `httpsPort` is the port clients use for HTTPS (redirects go there).
 */
export function acmeSettings(values: Readonly<Record<OptionName, ResolvedOption>>, publicUrl: URL | null, httpsPort: number, problems: string[]): AcmeSettings | null {
  const label = (name: OptionName) => values[name].source;
  const directory = values.acme.value;
  if (directory === null) {
    const given = ACME_OPTIONS.filter((name) => values[name].value !== null);
    if (given.length > 0) problems.push(`${given.map(label).join(', ')} only apply with --acme; remove ${given.length === 1 ? 'it' : 'them'}, or set --acme`);
    return null;
  }
  const before = problems.length;
  const directoryUrl = ACME_DIRECTORIES[directory.trim().toLowerCase()] ?? directoryUrlOf(directory);
  if (directoryUrl === null) problems.push(`${label('acme')}: "${directory}" is neither letsencrypt, letsencrypt-staging nor an https:// directory URL (e.g. https://ca.example.com/acme/directory)`);
  // What only shapes a certificate the gateway makes itself would be silently ignored.
  const ownCertificateOnly = (['tls-san', 'ca-domain'] as const).filter((name) => values[name].value !== null);
  if (ownCertificateOnly.length > 0) {
    problems.push(`${ownCertificateOnly.map(label).join(', ')} only apply to a certificate the gateway makes itself, not with ${label('acme')}; give the ACME certificate's names with ${label('acme-domains')} instead`);
  }
  if (!values['tls-cert'].isDefault || !values['tls-key'].isDefault) {
    problems.push(`${label('acme')} and ${!values['tls-cert'].isDefault ? label('tls-cert') : label('tls-key')} cannot be used together: with --acme the gateway gets and renews its certificate itself; remove one of them`);
  }
  const domains = domainsOf(values['acme-domains'].value, publicUrl);
  if (domains.length === 0) problems.push(`${label('acme')}: which names is the certificate for? set --public-url (e.g. https://registry.example.com) or ${label('acme-domains')}`);
  for (const name of domains) if (!DNS_NAME.test(name) || NUMERIC_TLD.test(name)) problems.push(`${values['acme-domains'].value === null ? label('public-url') : label('acme-domains')}: "${name}" is not a DNS name an ACME CA issues for (no IP addresses, no single-label names such as localhost)`);
  const email = values['acme-email'].value?.trim() ?? null;
  if (email !== null && !EMAIL.test(email)) problems.push(`${label('acme-email')}: "${email}" is not an email address`);
  const kid = values['acme-eab-kid'].value;
  const hmacKey = values['acme-eab-hmac-key'].value;
  if ((kid === null) !== (hmacKey === null)) problems.push(`${label(kid === null ? 'acme-eab-hmac-key' : 'acme-eab-kid')} needs ${label(kid === null ? 'acme-eab-kid' : 'acme-eab-hmac-key')} too: external account binding takes both`);
  if (hmacKey !== null && !/^[A-Za-z0-9_-]+={0,2}$/.test(hmacKey.trim())) problems.push(`${label('acme-eab-hmac-key')}: not a base64url key as the CA gives it`);
  let httpListen: AcmeSettings['httpListen'] = null;
  if (values['acme-http-listen'].value !== null) {
    const parsed = parseListen(values['acme-http-listen'].value);
    if (parsed.ok) httpListen = parsed.value;
    else problems.push(`${label('acme-http-listen')}: ${parsed.problem}`);
  }
  if (problems.length > before || directoryUrl === null) return null;
  return Object.freeze({
    directoryUrl,
    email,
    domains: Object.freeze(domains),
    caCertFile: values['acme-ca-cert'].value,
    eab: kid === null || hmacKey === null ? null : Object.freeze({ kid: kid.trim(), hmacKey: hmacKey.trim() }),
    httpListen,
    folder: join(dirname(values['tls-cert'].value!), 'acme'),
    httpsPort,
  });
}

function directoryUrlOf(text: string): string | null {
  try {
    const url = new URL(text.trim());
    return url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function domainsOf(text: string | null, publicUrl: URL | null): string[] {
  if (text === null) return publicUrl === null ? [] : [publicUrl.hostname.toLowerCase()];
  return [...new Set(text.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== ''))];
}
