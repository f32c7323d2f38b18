// Whom a login comes from, for throttling and for sharing the verification queue fairly: an IPv4
// address as it is, an IPv6 address by its /64. One IPv6 host commonly holds a whole /64 (SLAAC,
// privacy addresses, a provider's allocation), so keying on the full address would let it rotate
// addresses and start every count afresh.

import { isIPv6 } from 'node:net';

export function clientKey(address: string): string {
  if (!address.includes(':')) return address;
  const zoneless = address.split('%', 1)[0]!;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(zoneless);
  if (mapped !== null) return mapped[1]!;
  if (!isIPv6(zoneless)) return address;
  return `${ipv6Groups(zoneless).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address, in lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, null];
  const split = (part: string | undefined): string[] => (part ? part.split(':') : []);
  const toGroups = (parts: string[]): string[] =>
    parts.flatMap((part) => {
      if (!part.includes('.')) return [part];
      // An embedded IPv4 address fills the last two groups.
      const [a, b, c, d] = part.split('.').map(Number) as [number, number, number, number];
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const left = toGroups(split(head));
  const right = tail === null ? [] : toGroups(split(tail));
  const middle = tail === null ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((group) => parseInt(group, 16).toString(16));
}
