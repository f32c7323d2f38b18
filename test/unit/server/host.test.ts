import { describe, expect, it } from 'vitest';
import { hasOneValidHost } from '../../../src/server/pipeline.js';

const withHost = (...values: string[]) => values.flatMap((v) => ['Host', v]);

describe('hasOneValidHost', () => {
  it('accepts one host name, IPv4 or bracketed IPv6 address, with or without a port', () => {
    for (const host of ['registry.example.com', 'Registry.Example.COM:443', '127.0.0.1:8443', '[::1]', '[2001:db8::1]:5000', 'localhost']) {
      expect(hasOneValidHost(['Accept', '*/*', ...withHost(host)]), host).toBe(true);
    }
  });

  it('accepts a request without Host (HTTP/1.0; Node itself refuses HTTP/1.1 without one)', () => {
    expect(hasOneValidHost(['Accept', '*/*'])).toBe(true);
  });

  it('refuses two Host headers, even identical ones, whatever their spelling', () => {
    expect(hasOneValidHost(withHost('a.example', 'a.example'))).toBe(false);
    expect(hasOneValidHost(['Host', 'a.example', 'HOST', 'b.example'])).toBe(false);
  });

  it('refuses values that are not host[:port]', () => {
    for (const host of ['', 'a.example, b.example', 'a.example b', 'user@a.example', 'a.example/path', 'a.example:', 'a.example:123456', '::1', '[::1', 'a.example\\b']) {
      expect(hasOneValidHost(withHost(host)), JSON.stringify(host)).toBe(false);
    }
  });
});
