// Property tests: arbitrary input never makes the parsers and rewriters throw, and what should
// round-trip does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBasicAuthorization } from '../../src/auth/basic.js';
import { parseHtpasswd } from '../../src/auth/htpasswd.js';
import { buildClientResponseHeaders, buildUpstreamRequestHeaders } from '../../src/proxy/headers.js';
import { canonicalPath } from '../../src/registry/path.js';
import { rewriteLink, rewriteLocation, type RewriteContext } from '../../src/proxy/rewrite.js';
import { fixtureUsers } from '../helpers/htpasswd-fixtures.js';

const RUNS = { numRuns: 500 };
// Strings of any UTF-16 code units (lone surrogates too), and of the characters that matter most.
const anyText = fc.string({ unit: 'binary', maxLength: 200 });
const structural = fc.string({ unit: fc.constantFrom(':', '\n', '\r', '#', ' ', '\t', '\u0000', '\uFEFF', '$', 'a', '/', '%', '.', '<', '>', ';', ','), maxLength: 80 });

describe('htpasswd parser', () => {
  const hashes = [...fixtureUsers('users.htpasswd').values()].map((u) => u.hash);

  it('never throws, and reports every line it refuses with its number', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, structural), (text) => {
        const parsed = parseHtpasswd(text, 'htpasswd');
        const lines = text.replace(/^\uFEFF/, '').split('\n').length;
        for (const p of parsed.problems) {
          expect(p.line).toBeGreaterThanOrEqual(1);
          expect(p.line).toBeLessThanOrEqual(lines);
        }
      }),
      RUNS,
    );
  });

  it('reads back every user of a file made of valid lines, whatever the names and line endings', () => {
    const name = fc.string({ minLength: 1, maxLength: 20 }).filter((n) => !/[:\s#\u0000-\u001f\u007f-\u009f]/.test(n) && n.trim() === n);
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(name, fc.constantFrom(...hashes)), { selector: ([n]) => n, minLength: 1, maxLength: 10 }), fc.constantFrom('\n', '\r\n'), (entries, eol) => {
        const parsed = parseHtpasswd(entries.map(([n, h]) => `${n}:${h}`).join(eol) + eol, 'htpasswd');
        expect(parsed.problems).toEqual([]);
        expect([...parsed.users.keys()].sort()).toEqual(entries.map(([n]) => n).sort());
      }),
      RUNS,
    );
  });
});

describe('Basic header parser', () => {
  it('never throws on any header value', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, structural, anyText.map((t) => `Basic ${t}`), anyText.map((t) => `Basic ${Buffer.from(t).toString('base64')}`)), (value) => {
        const parsed = parseBasicAuthorization(value);
        expect(typeof parsed.ok).toBe('boolean');
      }),
      RUNS,
    );
  });

  it('gives back exactly the user and password a client encoded, colons and all', () => {
    const user = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).filter((u) => !u.includes(':') && !/[\u0000-\u001f\u007f-\u009f]/.test(u));
    const password = fc.string({ unit: 'grapheme', maxLength: 80 });
    fc.assert(
      fc.property(user, password, (u, p) => {
        const header = `Basic ${Buffer.from(`${u}:${p}`, 'utf8').toString('base64')}`;
        expect(parseBasicAuthorization(header)).toEqual({ ok: true, credentials: { user: u, password: p } });
      }),
      RUNS,
    );
  });
});

describe('header rewriting', () => {
  const ctx: RewriteContext = { publicOrigin: 'https://registry.example.com', upstreamOrigins: new Set(['http://127.0.0.1:5000']) };
  const pathAndQuery = fc.webPath().chain((path) => fc.webQueryParameters().map((query) => `/v2${path}${query === '' ? '' : `?${query}`}`));

  it('never throws on any Location or Link value', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, structural, fc.webUrl()), fc.integer({ min: 100, max: 599 }), (value, status) => {
        expect(typeof rewriteLocation(value, ctx, status)).toBe('string');
        expect(typeof rewriteLink(value, ctx)).toBe('string');
        expect(typeof rewriteLink(`<${value}>; rel="next"`, ctx)).toBe('string');
      }),
      RUNS,
    );
  });

  it('moves upstream URLs onto the public origin, keeping path and query byte for byte', () => {
    fc.assert(
      fc.property(pathAndQuery, fc.constantFrom(301, 302, 307, 201, 202), (rest, status) => {
        expect(rewriteLocation(`http://127.0.0.1:5000${rest}`, ctx, status)).toBe(`https://registry.example.com${rest}`);
        expect(rewriteLink(`<http://127.0.0.1:5000${rest}>; rel="next"`, ctx)).toBe(`<https://registry.example.com${rest}>; rel="next"`);
      }),
      RUNS,
    );
  });

  it('leaves relative URLs alone', () => {
    fc.assert(
      fc.property(pathAndQuery, (rest) => {
        expect(rewriteLocation(rest, ctx, 302)).toBe(rest);
      }),
      RUNS,
    );
  });

  it('never throws on any header list, and never passes hop-by-hop headers or credentials', () => {
    const name = fc.oneof(fc.constantFrom('Connection', 'Keep-Alive', 'TE', 'Upgrade', 'Transfer-Encoding', 'Proxy-Authorization', 'Authorization', 'Location', 'Link', 'X-Custom', 'Content-Length'), fc.string({ maxLength: 12 }));
    const value = fc.oneof(structural, fc.constantFrom('close', 'X-Custom, keep-alive', 'upgrade', 'chunked'));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 12 }), (pairs) => {
        const raw = pairs.flat();
        const up = buildUpstreamRequestHeaders(raw, { clientAddress: '192.0.2.1', host: 'registry.example.com' });
        const down = buildClientResponseHeaders(raw, { ...ctx, status: 200, challenge: 'Basic realm="R"', registryApi: true });
        for (const headers of [up, down]) {
          for (const hop of ['connection', 'keep-alive', 'te', 'upgrade', 'proxy-authorization']) expect(headers[hop]).toBeUndefined();
        }
        expect(up.authorization).toBeUndefined();
        expect(up['x-forwarded-for']).toBe('192.0.2.1');
      }),
      RUNS,
    );
  });
});

describe('path canonicalization', () => {
  it('never throws, and what it accepts is already canonical', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, structural, fc.webPath()), (path) => {
        const first = canonicalPath(path);
        if (first.ok) expect(canonicalPath(first.path)).toEqual(first);
      }),
      RUNS,
    );
  });
});
