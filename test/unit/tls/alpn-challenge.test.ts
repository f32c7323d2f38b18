// TLS-ALPN-01 on the HTTPS listener: real TLS clients against an https.Server set up as the
// gateway's (its TLS options, and the connection limit), with the challenge answering in front.
import { X509Certificate } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import acme from 'acme-client';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { limitConnections } from '../../../src/server/connection-limit.js';
import { answerAlpnChallenges, parseClientHello, type AlpnChallenges, type AlpnChallengeOptions } from '../../../src/tls/alpn-challenge.js';
import { secureServerOptions } from '../../../src/tls/options.js';
import type { CertificatePair } from '../../../src/tls/source.js';
import { makeTestPki } from '../../helpers/pki.js';
import { eventually, sleep } from '../../helpers/wait.js';

const NAME = 'registry.example.test';
const KEY_AUTHORIZATION = 'token-abc.thumbprint-xyz';
/** Clients give up after this, so a broken hand-over fails a test rather than hanging it. */
const CLIENT_TIMEOUT_MS = 5_000;

let dir: string;
let normal: CertificatePair & { ca: string; fingerprint: string };
let challenge: CertificatePair;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-alpn-challenge-'));
  const pki = await makeTestPki(dir, { hosts: ['localhost'], ips: ['127.0.0.1'] });
  const cert = await readFile(pki.serverCert, 'utf8');
  normal = { cert, key: await readFile(pki.serverKey, 'utf8'), ca: pki.caPem, fingerprint: new X509Certificate(cert).fingerprint256 };
  const authz = { url: 'https://ca.example.test/authz/1', identifier: { type: 'dns', value: NAME }, status: 'pending' as const, challenges: [] };
  // acme-client's default RSA key, as the ACME source uses it: its certificate's key usage
  // (keyCertSign, cRLSign) leaves out digitalSignature, which OpenSSL requires of an ECDSA
  // certificate in TLS 1.2 (it refuses the handshake) but not of an RSA one.
  const [key, alpnCert] = await acme.crypto.createAlpnCertificate(authz, KEY_AUTHORIZATION);
  challenge = { key: key.toString(), cert: alpnCert.toString() };
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Gateway {
  readonly server: https.Server;
  readonly port: number;
  readonly challenges: AlpnChallenges & { pending: ReturnType<typeof vi.fn>; certificateFor: ReturnType<typeof vi.fn> };
  readonly clientErrors: Error[];
  setPending(value: boolean): void;
  undo(): void;
}

const running: https.Server[] = [];
/** Client sockets of a test: destroyed after it, so a server in a broken state cannot hold the close up. */
const clients = new Set<Socket>();
afterEach(async () => {
  for (const socket of clients) socket.destroy();
  clients.clear();
  for (const server of running.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const hello: Handler = (req, res) => res.end(`hello ${req.socket.remoteAddress}`);

/** An https.Server with the gateway's TLS options; the connection limit when `max` is given. */
async function startGateway(
  options: { max?: number; handler?: Handler; handshakeTimeout?: number; install?: 'before-limit' | 'after-limit' | 'none' } & AlpnChallengeOptions = {},
): Promise<Gateway> {
  const server = https.createServer({ ...secureServerOptions({ cert: normal.cert, key: normal.key, clientCa: null }), handshakeTimeout: options.handshakeTimeout ?? 120_000 });
  running.push(server);
  let pending = true;
  const challenges = {
    pending: vi.fn(() => pending),
    certificateFor: vi.fn((name: string) => (name === NAME ? challenge : null)),
  };
  const clientErrors: Error[] = [];
  server.on('tlsClientError', (err) => clientErrors.push(err));
  const install = options.install ?? 'after-limit';
  let undo = () => undefined as void;
  if (install === 'before-limit') undo = answerAlpnChallenges(server, challenges, options);
  const handler = options.handler ?? hello;
  const guard = options.max === undefined ? handler : limitConnections(server, { max: options.max, log: pino({ level: 'silent' }), hstsMaxAge: 0 }).guard(handler);
  server.on('request', guard);
  if (install === 'after-limit') undo = answerAlpnChallenges(server, challenges, options);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, challenges, clientErrors, setPending: (value) => void (pending = value), undo: () => undo() };
}

interface Handshake {
  readonly alpn: string | false | null;
  readonly cert: X509Certificate;
  /** Resolves once the server has closed the connection. */
  readonly closedByServer: Promise<void>;
  readonly socket: tls.TLSSocket;
}

/** A real TLS client's handshake (certificate not checked: the challenge one is self-signed and expired). */
function handshake(port: number, options: tls.ConnectionOptions, via?: number): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: via ?? port, rejectUnauthorized: false, ...options });
    clients.add(socket);
    const closedByServer = new Promise<void>((done) => socket.once('end', done).once('close', done));
    socket.once('secureConnect', () => {
      socket.setTimeout(0);
      resolve({ alpn: socket.alpnProtocol, cert: socket.getPeerX509Certificate()!, closedByServer, socket });
    });
    socket.once('error', reject);
    socket.setTimeout(CLIENT_TIMEOUT_MS, () => socket.destroy(new Error('no handshake in time')));
  });
}

function validatorHandshake(port: number, via?: number): Promise<Handshake> {
  return handshake(port, { servername: NAME, ALPNProtocols: ['acme-tls/1'] }, via);
}

/** An HTTPS GET as a registry client makes it, trusting the test CA. */
function httpsGet(port: number, alpn?: string[]): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, servername: 'localhost', ca: normal.ca, agent: false, path: '/v2/', ...(alpn ? { ALPNProtocols: alpn } : {}) }, (res) => {
      const fingerprint = (res.socket as tls.TLSSocket).getPeerX509Certificate()!.fingerprint256;
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body, fingerprint }));
    });
    req.on('error', reject);
    req.setTimeout(CLIENT_TIMEOUT_MS, () => req.destroy(new Error('no answer in time')));
  });
}

/** A raw TCP connection that writes `bytes` and reports when the server closes it. */
function rawConnection(port: number, bytes: Buffer | string): Promise<{ socket: Socket; closed: Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(bytes);
      resolve({ socket, closed });
    });
    clients.add(socket);
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise<Buffer>((done) => socket.once('close', () => done(Buffer.concat(received))));
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

/**
 * A TCP relay to `port` that writes what the client sends in the pieces `shape` makes of each
 * chunk, pausing before each as told: to fragment a ClientHello over many segments, or stall it.
 */
async function shapingRelay(port: number, shape: (chunk: Buffer) => Array<{ bytes: Buffer; pauseMs: number }>): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('error', () => undefined);
    }
    upstream.pipe(client);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    let writing = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      writing = writing.then(async () => {
        for (const piece of shape(chunk)) {
          if (piece.pauseMs > 0) await sleep(piece.pauseMs);
          upstream.write(piece.bytes);
        }
      });
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      relay.close();
    },
  };
}

/** The first TLS record a real client sends: its ClientHello. */
async function captureHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise<Buffer>((resolve) => {
      server.once('connection', (socket) => {
        let buf = Buffer.alloc(0);
        socket.on('data', (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
            socket.destroy();
            resolve(buf);
          }
        });
      });
      tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...options }).on('error', () => undefined);
    });
  } finally {
    server.close();
  }
}

describe('answerAlpnChallenges: the validator', () => {
  it('gets the challenge certificate with acme-tls/1, and the connection closed after the handshake', async () => {
    const gw = await startGateway();
    const answer = await validatorHandshake(gw.port);
    expect(answer.alpn).toBe('acme-tls/1');
    expect(acme.crypto.isAlpnCertificateAuthorizationValid(answer.cert.toString(), KEY_AUTHORIZATION)).toBe(true);
    expect(acme.crypto.isAlpnCertificateAuthorizationValid(answer.cert.toString(), 'another.authorization')).toBe(false);
    expect(answer.cert.subjectAltName).toBe(`DNS:${NAME}`);
    await answer.closedByServer;
    expect(gw.challenges.certificateFor).toHaveBeenCalledWith(NAME);
    expect(gw.clientErrors).toEqual([]);
  });

  it('gets it over TLS 1.2 too, and with the name in capitals', async () => {
    const gw = await startGateway();
    const answer = await handshake(gw.port, { servername: NAME.toUpperCase(), ALPNProtocols: ['acme-tls/1'], maxVersion: 'TLSv1.2' });
    expect(answer.alpn).toBe('acme-tls/1');
    expect(answer.socket.getProtocol()).toBe('TLSv1.2');
    expect(acme.crypto.isAlpnCertificateAuthorizationValid(answer.cert.toString(), KEY_AUTHORIZATION)).toBe(true);
    await answer.closedByServer;
  });

  it('gets it when the ClientHello arrives in many small segments', async () => {
    const gw = await startGateway();
    let pieces = 0;
    // Before the server answers the client sends nothing but its hello: all of it goes in 16-byte pieces.
    const relay = await shapingRelay(gw.port, (chunk) => {
      const out: Array<{ bytes: Buffer; pauseMs: number }> = [];
      for (let at = 0; at < chunk.length; at += 16) out.push({ bytes: chunk.subarray(at, at + 16), pauseMs: pieces++ < 40 ? 3 : 0 });
      return out;
    });
    try {
      const answer = await validatorHandshake(gw.port, relay.port);
      expect(pieces).toBeGreaterThan(10);
      expect(answer.alpn).toBe('acme-tls/1');
      expect(acme.crypto.isAlpnCertificateAuthorizationValid(answer.cert.toString(), KEY_AUTHORIZATION)).toBe(true);
    } finally {
      relay.close();
    }
  });

  it('cuts a validator connection whose handshake stalls after the hello', async () => {
    const gw = await startGateway({ handshakeTimeoutMs: 300 });
    const full = await captureHello({ servername: NAME, ALPNProtocols: ['acme-tls/1'] });
    const started = Date.now();
    const { closed } = await rawConnection(gw.port, full);
    const received = await closed;
    expect(received[0]).toBe(0x16); // the ServerHello came, then nothing more was needed of the client
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(gw.challenges.certificateFor).toHaveBeenCalledWith(NAME);
  });
});

describe('answerAlpnChallenges: everyone else, while a challenge is pending', () => {
  it('gets the normal certificate and an HTTPS answer, with ALPN http/1.1 or none', async () => {
    const gw = await startGateway();
    for (const alpn of [['http/1.1'], undefined]) {
      const res = await httpsGet(gw.port, alpn);
      expect(res).toEqual({ status: 200, body: 'hello 127.0.0.1', fingerprint: normal.fingerprint });
    }
    expect(gw.challenges.pending).toHaveBeenCalled();
    expect(gw.challenges.certificateFor).not.toHaveBeenCalled();
  });

  it('gets the normal handshake when acme-tls/1 is not offered alone, or for a name without a challenge', async () => {
    const gw = await startGateway();
    const both = await handshake(gw.port, { servername: NAME, ALPNProtocols: ['acme-tls/1', 'http/1.1'] });
    expect(both.alpn).toBe('http/1.1');
    expect(both.cert.fingerprint256).toBe(normal.fingerprint);
    both.socket.destroy();
    // As without a challenge answer: the listener speaks http/1.1 only, and refuses the handshake.
    await expect(handshake(gw.port, { servername: 'other.example.test', ALPNProtocols: ['acme-tls/1'] })).rejects.toThrow(/no application protocol|alert number 120/i);
    expect(gw.challenges.certificateFor).toHaveBeenCalledWith('other.example.test');
  });

  it('passes garbage on to the server, which refuses it as it always has', async () => {
    const gw = await startGateway();
    for (const bytes of ['GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00])]) {
      const { closed } = await rawConnection(gw.port, bytes);
      await closed;
    }
    expect(await eventually(() => gw.clientErrors.length === 2)).toBe(true);
  });

  it('passes a hello that stalls past the wait on to the server, bytes intact', async () => {
    const gw = await startGateway({ helloTimeoutMs: 200 });
    // The first 20 bytes, then nothing for longer than the wait, then the rest.
    const relay = await shapingRelay(gw.port, (chunk) => [
      { bytes: chunk.subarray(0, 20), pauseMs: 0 },
      { bytes: chunk.subarray(20), pauseMs: 500 },
    ]);
    try {
      const res = await httpsGet(relay.port, ['http/1.1']);
      expect(res).toEqual({ status: 200, body: 'hello 127.0.0.1', fingerprint: normal.fingerprint });
    } finally {
      relay.close();
    }
  });

  it('stops reading a hello dribbled in byte by byte and passes it on as it is', async () => {
    const gw = await startGateway();
    const relay = await shapingRelay(gw.port, (chunk) => [...chunk].map((byte, i) => ({ bytes: Buffer.from([byte]), pauseMs: i < 100 ? 2 : 0 })));
    try {
      // The server's own handler got it: a validator's hello there meets the listener's http/1.1.
      await expect(validatorHandshake(gw.port, relay.port)).rejects.toThrow(/no application protocol|alert number 120/i);
      expect(gw.challenges.certificateFor).not.toHaveBeenCalled();
      // An ordinary client dribbling the same way is served as usual.
      expect((await httpsGet(relay.port, ['http/1.1'])).fingerprint).toBe(normal.fingerprint);
    } finally {
      relay.close();
    }
  });

  it('does not leave a connection that stalls mid-hello hanging: the server handshake timeout ends it', async () => {
    const gw = await startGateway({ helloTimeoutMs: 200, handshakeTimeout: 300 });
    const full = await captureHello({ servername: NAME, ALPNProtocols: ['acme-tls/1'] });
    const started = Date.now();
    const { closed } = await rawConnection(gw.port, full.subarray(0, 30));
    await closed;
    expect(Date.now() - started).toBeLessThan(3_000);
    // The server's own handler took it, and its handshake timeout ended it.
    expect(await eventually(() => gw.clientErrors.some((e) => /timeout/i.test(e.message)))).toBe(true);
  });

  it('closes a connection that ends before its hello is whole', async () => {
    const gw = await startGateway();
    const full = await captureHello({ servername: NAME, ALPNProtocols: ['acme-tls/1'] });
    const { socket, closed } = await rawConnection(gw.port, full.subarray(0, 30));
    socket.end();
    await closed;
  });
});

describe('answerAlpnChallenges: the server around it', () => {
  /** Replaces the server's own handler by one that notes each socket it is given, then installs the answer. */
  async function observed(options: { install?: 'none' | 'after-limit' } = {}) {
    const gw = await startGateway({ install: 'none' });
    const own = gw.server.rawListeners('connection')[0] as (this: https.Server, s: Socket) => void;
    const handed = new WeakSet<Socket>();
    gw.server.removeListener('connection', own);
    gw.server.prependListener('connection', function (this: https.Server, s: Socket) {
      handed.add(s);
      own.call(this, s);
    });
    const undo = options.install === 'none' ? () => undefined : answerAlpnChallenges(gw.server, gw.challenges);
    // Whether the server's handler had the socket by the time the next listener saw it.
    const atAccept: boolean[] = [];
    gw.server.on('connection', (s: Socket) => atAccept.push(handed.has(s)));
    return { gw, atAccept, undo };
  }

  it('reads nothing while no challenge is pending: the server has each socket at once', async () => {
    const { gw, atAccept } = await observed();
    gw.setPending(false);
    expect((await httpsGet(gw.port)).status).toBe(200);
    expect((await handshake(gw.port, { servername: NAME, ALPNProtocols: ['http/1.1', 'acme-tls/1'] })).cert.fingerprint256).toBe(normal.fingerprint);
    expect(atAccept).toEqual([true, true]);
    expect(gw.challenges.pending).toHaveBeenCalledTimes(2);
    expect(gw.challenges.certificateFor).not.toHaveBeenCalled();
    // Pending: the hello is read first, and the server gets the socket afterwards.
    gw.setPending(true);
    expect((await httpsGet(gw.port)).status).toBe(200);
    expect(atAccept).toEqual([true, true, false]);
  });

  it('undoes itself: the server own handler back in its place', async () => {
    const gw = await startGateway({ max: 10, install: 'none' });
    const before = gw.server.rawListeners('connection');
    const undo = answerAlpnChallenges(gw.server, gw.challenges);
    const during = gw.server.rawListeners('connection');
    expect(during).toHaveLength(before.length);
    expect(during[0]).not.toBe(before[0]);
    expect(during.slice(1)).toEqual(before.slice(1));
    undo();
    undo();
    expect(gw.server.rawListeners('connection')).toEqual(before);
    expect((await httpsGet(gw.port)).status).toBe(200);
    expect(gw.challenges.pending).not.toHaveBeenCalled();
  });

  it.each(['after-limit', 'before-limit'] as const)('keeps the connection limit counting (installed %s): a stalled hello holds a place and is the one closed', async (install) => {
    const gw = await startGateway({ max: 1, install, helloTimeoutMs: 10_000 });
    expect(gw.server.rawListeners('connection')).toHaveLength(2);
    const full = await captureHello({ servername: NAME, ALPNProtocols: ['acme-tls/1'] });
    const stalled = await rawConnection(gw.port, full.subarray(0, 30));
    await sleep(50);
    const started = Date.now();
    expect((await httpsGet(gw.port)).status).toBe(200);
    await stalled.closed;
    // Closed by the limit as the longest idle, long before the hello wait would have run out.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('keeps the connection limit seeing requests on connections whose hello was read', async () => {
    let release = () => undefined as void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const gw = await startGateway({
      max: 1,
      handler: (req, res) => {
        if (req.url === '/slow') void held.then(() => res.end('slow done'));
        else res.end('fast');
      },
    });
    const slow = new Promise<{ status: number; body: string }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: gw.port, servername: 'localhost', ca: normal.ca, agent: false, path: '/slow' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject);
    });
    await sleep(200);
    // The only place is busy (the guard found the connection by its address), so the next one
    // only gets the limit's 503, and the busy one is not closed to make room.
    const second = await httpsGet(gw.port);
    expect(second.status).toBe(503);
    release();
    expect(await slow).toEqual({ status: 200, body: 'slow done' });
  });
});

describe('parseClientHello', () => {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const vec = (size: 1 | 2, ...parts: Buffer[]) => {
    const body = Buffer.concat(parts);
    return Buffer.concat([size === 1 ? Buffer.from([body.length]) : u16(body.length), body]);
  };
  const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), vec(2, data)]);
  const sni = (...names: Array<[number, string]>) => ext(0, vec(2, ...names.map(([type, name]) => Buffer.concat([Buffer.from([type]), vec(2, Buffer.from(name, 'latin1'))]))));
  const alpn = (...protocols: string[]) => ext(16, vec(2, ...protocols.map((p) => vec(1, Buffer.from(p, 'latin1')))));

  function helloBody(extensions: Buffer[] | null, options: { suites?: Buffer; trailing?: Buffer } = {}): Buffer {
    return Buffer.concat([
      Buffer.from([3, 3]),
      Buffer.alloc(32, 7),
      vec(1, Buffer.alloc(32, 1)),
      vec(2, options.suites ?? Buffer.from([0x13, 0x01, 0xc0, 0x2b])),
      vec(1, Buffer.from([0])),
      ...(extensions === null ? [] : [vec(2, ...extensions)]),
      options.trailing ?? Buffer.alloc(0),
    ]);
  }
  const handshakeMessage = (body: Buffer, type = 1) => Buffer.concat([Buffer.from([type, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  /** The message in records of at most `size` bytes each. */
  function records(message: Buffer, size = 16384, type = 22): Buffer {
    const out: Buffer[] = [];
    for (let at = 0; at < message.length; at += size) {
      const fragment = message.subarray(at, at + size);
      out.push(Buffer.from([type, 3, 1]), u16(fragment.length), fragment);
    }
    return Buffer.concat(out);
  }
  const hello = (extensions: Buffer[] | null, options?: { suites?: Buffer; trailing?: Buffer }) => records(handshakeMessage(helloBody(extensions, options)));

  it('reads the name and the protocols', () => {
    expect(parseClientHello(hello([ext(0x2b, Buffer.from([2, 3, 4])), sni([0, 'Registry.Example.TEST']), alpn('acme-tls/1')]))).toEqual({ serverName: 'registry.example.test', alpn: ['acme-tls/1'] });
    expect(parseClientHello(hello([alpn('h2', 'http/1.1')]))).toEqual({ serverName: null, alpn: ['h2', 'http/1.1'] });
    expect(parseClientHello(hello([]))).toEqual({ serverName: null, alpn: [] });
    // A TLS 1.2 hello may end before the extensions.
    expect(parseClientHello(hello(null))).toEqual({ serverName: null, alpn: [] });
  });

  it('joins a hello fragmented over several records, and ignores what follows it', () => {
    const message = handshakeMessage(helloBody([sni([0, 'a.example']), alpn('acme-tls/1')]));
    const expected = { serverName: 'a.example', alpn: ['acme-tls/1'] };
    expect(parseClientHello(records(message, 1))).toEqual(expected);
    expect(parseClientHello(records(message, 3))).toEqual(expected);
    expect(parseClientHello(Buffer.concat([records(message, 50), Buffer.from([23, 3, 3, 0, 1, 0])]))).toEqual(expected);
  });

  it('says incomplete for every strict prefix of a hello, whole or fragmented', () => {
    const message = handshakeMessage(helloBody([sni([0, 'a.example']), alpn('acme-tls/1')]));
    for (const whole of [records(message), records(message, 7)]) {
      for (let n = 0; n < whole.length; n++) expect(parseClientHello(whole.subarray(0, n))).toBe('incomplete');
      expect(parseClientHello(whole)).not.toBeTypeOf('string');
    }
  });

  it('says not-hello as soon as the bytes cannot start one', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('not-hello');
    expect(parseClientHello(Buffer.from([0x17]))).toBe('not-hello'); // application data
    expect(parseClientHello(Buffer.from([0x16, 0x02]))).toBe('not-hello'); // not TLS 3.x
    expect(parseClientHello(Buffer.from([0x80, 0x2e, 0x01]))).toBe('not-hello'); // SSLv2-style hello
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0, 0]))).toBe('not-hello'); // empty record
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0x40, 0x01]))).toBe('not-hello'); // record over 2^14
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0, 4, 2]))).toBe('not-hello'); // a ServerHello
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0, 4, 1, 0x00, 0x40, 0x01]))).toBe('not-hello'); // over 16 KiB
    // A handshake fragment, then a record of another type before the hello is whole.
    const message = handshakeMessage(helloBody([]));
    expect(parseClientHello(Buffer.concat([records(message.subarray(0, 10)), records(message.subarray(10), 16384, 23)]))).toBe('not-hello');
  });

  it('refuses malformed hellos', () => {
    const cases: Array<[string, Buffer]> = [
      ['odd cipher suite bytes', hello([], { suites: Buffer.from([0x13, 0x01, 0xc0]) })],
      ['bytes after the extensions', hello([alpn('h2')], { trailing: Buffer.from([0]) })],
      ['a repeated extension', hello([alpn('h2'), alpn('h2')])],
      ['an empty protocol name', hello([alpn('h2', '')])],
      ['an empty ALPN list', hello([ext(16, vec(2))])],
      ['two host names', hello([sni([0, 'a.example'], [0, 'b.example'])])],
      ['a host name with a NUL', hello([sni([0, 'a.example\0.evil'])])],
      ['a host name with a trailing dot', hello([sni([0, 'a.example.'])])],
      ['a host name of non-ASCII bytes', hello([sni([0, 'ex\u00e4mple.test'])])],
      ['an SNI list with no host name', hello([sni([1, 'a.example'])])],
      ['an extension running past the end', hello([Buffer.concat([u16(16), u16(200), Buffer.from([0, 3, 2, 104, 50])])])],
    ];
    for (const [what, bytes] of cases) expect([what, parseClientHello(bytes)]).toEqual([what, 'not-hello']);
  });

  it('reads real hellos from Node TLS clients', async () => {
    expect(parseClientHello(await captureHello({ servername: NAME, ALPNProtocols: ['acme-tls/1'] }))).toEqual({ serverName: NAME, alpn: ['acme-tls/1'] });
    expect(parseClientHello(await captureHello({ servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'], maxVersion: 'TLSv1.2' }))).toEqual({ serverName: 'localhost', alpn: ['h2', 'http/1.1'] });
    // No SNI for an IP address, and no ALPN unless asked for.
    expect(parseClientHello(await captureHello({}))).toEqual({ serverName: null, alpn: [] });
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, asHello) => {
        const buf = Buffer.from(bytes);
        // Half the inputs get a plausible record and handshake header, so the body parser is reached.
        const input = asHello ? Buffer.concat([Buffer.from([22, 3, 1]), u16(buf.length + 4), Buffer.from([1, 0, buf.length >> 8, buf.length & 0xff]), buf]) : buf;
        const result = parseClientHello(input);
        expect(result === 'incomplete' || result === 'not-hello' || typeof result === 'object').toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});
