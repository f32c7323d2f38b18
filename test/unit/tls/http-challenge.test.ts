// The HTTP-01 listener: real HTTP requests for challenges, redirects, and what a hostile client sends.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isGatewayError } from '../../../src/errors.js';
import { canonicalHost, startHttpChallengeListener, type HttpChallengeListener } from '../../../src/tls/http-challenge.js';

const TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const KEY_AUTHORIZATION = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;

const open: HttpChallengeListener[] = [];
afterEach(async () => {
  for (const listener of open.splice(0)) await listener.close();
});

async function start(httpsPort: number | null = null, keyAuthorization = vi.fn((token: string) => (token === TOKEN ? KEY_AUTHORIZATION : null))) {
  const listener = await startHttpChallengeListener({ host: '127.0.0.1', port: 0, keyAuthorization, httpsPort });
  open.push(listener);
  return { port: listener.port, keyAuthorization, listener };
}

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function request(port: number, path: string, options: { method?: string; host?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent: false, headers: { host: options.host ?? 'registry.example.test' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Writes `text` as it is and resolves with all the listener wrote back before closing, and how long that took. */
function raw(port: number, text: string, holdOpen = false): Promise<{ status: number; text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1', () => (holdOpen ? socket.write(text) : socket.end(text)));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const received = Buffer.concat(chunks).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), text: received, ms: Date.now() - started });
    });
  });
}

describe('startHttpChallengeListener: challenges', () => {
  it('answers a pending challenge with its key authorization', async () => {
    const { port, keyAuthorization } = await start();
    const res = await request(port, `/.well-known/acme-challenge/${TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.body).toBe(KEY_AUTHORIZATION);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.headers.location).toBeUndefined();
    expect(keyAuthorization).toHaveBeenCalledWith(TOKEN);
    const head = await request(port, `/.well-known/acme-challenge/${TOKEN}`, { method: 'HEAD' });
    expect([head.status, head.body, head.headers['content-length']]).toEqual([200, '', String(KEY_AUTHORIZATION.length)]);
  });

  it('answers 404 for unknown and malformed tokens, never a redirect, and asks only about well-formed ones', async () => {
    const { port, keyAuthorization } = await start();
    for (const token of ['unknown-token_1', '', 'a.b', '..%2f..%2fetc', `${TOKEN}/extra`, 'x'.repeat(300)]) {
      const res = await request(port, `/.well-known/acme-challenge/${token}`);
      expect([token, res.status, res.headers.location]).toEqual([token, 404, undefined]);
    }
    expect(keyAuthorization.mock.calls).toEqual([['unknown-token_1']]);
  });

  it('refuses other methods on challenge paths', async () => {
    const { port } = await start();
    const res = await request(port, `/.well-known/acme-challenge/${TOKEN}`, { method: 'POST', body: 'x' });
    expect([res.status, res.headers.allow]).toEqual([405, 'GET, HEAD']);
  });

  it('answers 500 when the lookup throws, and keeps serving', async () => {
    const { port } = await start(null, vi.fn(() => {
      throw new Error('store gone');
    }));
    expect((await request(port, `/.well-known/acme-challenge/${TOKEN}`)).status).toBe(500);
    expect((await request(port, '/')).status).toBe(301);
  });
});

describe('startHttpChallengeListener: redirects', () => {
  it('sends everything else to the same host and path on HTTPS, port 443 left out', async () => {
    for (const httpsPort of [null, 443]) {
      const { port } = await start(httpsPort);
      const res = await request(port, '/v2/_catalog?n=10&last=a%2Fb');
      expect([res.status, res.headers.location, res.body]).toEqual([301, 'https://registry.example.test/v2/_catalog?n=10&last=a%2Fb', '']);
    }
  });

  it('puts the HTTPS port in place of the one in Host, and keeps IP literals', async () => {
    const { port } = await start(8443);
    const cases: Array<[string, string]> = [
      ['Registry.Example.TEST:80', 'https://registry.example.test:8443/x'],
      ['192.0.2.7', 'https://192.0.2.7:8443/x'],
      ['[2001:DB8::1]:8080', 'https://[2001:db8::1]:8443/x'],
    ];
    for (const [host, location] of cases) expect((await request(port, '/x', { host })).headers.location).toBe(location);
  });

  it('keeps the method with 308 for anything but GET and HEAD, without reading the body', async () => {
    const { port } = await start();
    const res = await request(port, '/v2/x/blobs/uploads/', { method: 'POST', body: 'layer' });
    expect([res.status, res.headers.location]).toEqual([308, 'https://registry.example.test/v2/x/blobs/uploads/']);
    expect((await request(port, '/', { method: 'HEAD' })).status).toBe(301);
    // A huge body announced and never sent: answered at once, and the connection closed.
    const big = await raw(port, 'PUT /v2/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1000000000\r\n\r\npartial', true);
    expect(big.status).toBe(308);
    expect(big.ms).toBeLessThan(2_000);
  });

  it('answers 400 to a Host that is not one valid host name or IP literal, never redirecting there', async () => {
    const { port } = await start();
    const bad = [
      'evil.example/x', 'evil.example:99999', 'evil.example:0', 'evil.example:', 'user@evil.example', 'a b', '',
      '[::1', '[fe80::1%25eth0]', '[evil.example]', '::1', '1.2.3', '256.1.1.1', '0x7f.1', 'evil.0x10', 'a..b', '-a.example',
      'evil.example.', 'ex_ample.test', `${'a'.repeat(64)}.example`, 'évil.example',
    ];
    for (const host of bad) {
      const res = await raw(port, `GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect([host, res.status, /location/i.test(res.text)]).toEqual([host, 400, false]);
    }
  });

  it('answers 400 without Host, with two of them, or with a target that is not a path', async () => {
    const { port } = await start();
    const requests = [
      'GET /x HTTP/1.0\r\n\r\n',
      'GET /x HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n',
      'GET http://evil.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n',
      'GET * HTTP/1.1\r\nHost: a.example\r\n\r\n',
      'GET /caf\xe9 HTTP/1.1\r\nHost: a.example\r\n\r\n',
    ];
    for (const text of requests) expect([text, (await raw(port, text)).status]).toEqual([text, 400]);
  });
});

describe('canonicalHost', () => {
  it('keeps names and addresses, lower-cased, without the port', () => {
    expect(canonicalHost('Example.COM:80')).toBe('example.com');
    expect(canonicalHost('localhost')).toBe('localhost');
    expect(canonicalHost('xn--bcher-kva.example')).toBe('xn--bcher-kva.example');
    expect(canonicalHost('10.0.0.1:65535')).toBe('10.0.0.1');
    expect(canonicalHost('[::FFFF:192.0.2.1]')).toBe('[::ffff:192.0.2.1]');
    expect(canonicalHost(`${'a'.repeat(63)}.example`)).toBe(`${'a'.repeat(63)}.example`);
  });
});

describe('startHttpChallengeListener: limits', () => {
  it('refuses oversized headers', async () => {
    const { port } = await start();
    const res = await raw(port, `GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: ${'p'.repeat(10_000)}\r\n\r\n`);
    expect(res.status).toBe(431);
  });

  it('ends a connection whose headers do not arrive in time', async () => {
    const { port } = await start();
    const res = await raw(port, 'GET / HTTP/1.1\r\nHost: a.exa', true);
    expect(res.ms).toBeGreaterThan(9_000);
    expect(res.ms).toBeLessThan(13_000);
    expect([0, 408]).toContain(res.status);
  }, 20_000);

  it('stops on close, and says LISTEN_FAILED for an address in use', async () => {
    const { port, listener } = await start();
    const err = await startHttpChallengeListener({ host: '127.0.0.1', port, keyAuthorization: () => null, httpsPort: null }).catch((e: unknown) => e);
    expect(isGatewayError(err, 'LISTEN_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/--acme-http-listen/);
    await listener.close();
    await expect(request(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });
});
