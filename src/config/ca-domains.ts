// `--ca-domain`/GATEWAY_CA_DOMAIN values: DNS suffixes a CA the gateway makes may sign for (see
// tls/name-constraints.ts, which builds the extension from them). Plain text checks, so that
// configuration can check them without the certificate code.

import { isIP } from 'node:net';

/**
 * Checks a value of `--ca-domain`/GATEWAY_CA_DOMAIN: a DNS name of two labels or more, written
 * without a leading dot or wildcard. Returns the lower-cased name or a problem sentence.
 */
export function caDomainProblem(text: string): { domain: string } | { problem: string } {
  const domain = text.trim().toLowerCase();
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  if (domain === '') return { problem: 'a domain is empty (a stray comma?); give a suffix such as example.com' };
  if (isIP(domain) !== 0) return { problem: `"${text}" is an IP address; give a DNS suffix such as example.com (the CA already permits the addresses it was made for)` };
  if (domain.startsWith('*.') || domain.startsWith('.')) {
    return { problem: `"${text}": write it as ${domain.replace(/^\*?\./, '')}, which permits that name and every name under it` };
  }
  const labels = domain.split('.');
  if (domain.length > 253 || !labels.every((l) => label.test(l))) {
    return { problem: `"${text}" is not a DNS name: use letters, digits and hyphens in dot-separated labels (an internationalised name in its xn-- form)` };
  }
  if (labels.length < 2) {
    return { problem: `"${text}" is a single label: the CA could then sign for a whole top-level domain; give at least two labels, such as corp.example or home.arpa` };
  }
  return { domain };
}

/** A comma-separated list of `--ca-domain` values (or several flags' worth), each checked. */
export function parseCaDomains(values: readonly string[]): { domains: string[]; problems: string[] } {
  const domains: string[] = [];
  const problems: string[] = [];
  for (const part of values.flatMap((v) => v.split(','))) {
    const checked = caDomainProblem(part);
    if ('domain' in checked) domains.push(checked.domain);
    else problems.push(checked.problem);
  }
  return { domains: [...new Set(domains)], problems };
}
