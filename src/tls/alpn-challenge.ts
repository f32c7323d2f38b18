// TLS-ALPN-01 (RFC 8737) on the gateway's own HTTPS listener. The validator connects to port 443
// offering the single ALPN protocol "acme-tls/1" and the name under validation as SNI, and expects
// a self-signed certificate carrying the key authorization's digest. Node picks the certificate
// before it shows anyone the ALPN list (SNICallback has only the name), so while a challenge is
// pending the start of each connection is read here first: a validator's handshake is answered
// here, every other connection goes on to the server's own handler with its bytes put back.

import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { CertificatePair } from './source.js';

export const ACME_TLS_ALPN = 'acme-tls/1';

/** The largest ClientHello looked at; real ones are well under 2 KiB even with post-quantum key shares. */
export const MAX_HELLO_BYTES = 16 * 1024;

export interface AlpnChallenges {
  /** The challenge certificate for this SNI name, or null when none is pending for it. */
  certificateFor(serverName: string): CertificatePair | null;
  /** Whether any TLS-ALPN-01 challenge is pending; while it is not, connections are not looked at. */
  pending(): boolean;
}

export interface AlpnChallengeOptions {
  /** How long a new connection may take to send its ClientHello before it goes on unread. */
  readonly helloTimeoutMs?: number;
  /** How long a validator's handshake may take before its connection is cut. */
  readonly handshakeTimeoutMs?: number;
}

export interface ClientHello {
  /** The SNI host name, lower-cased; null without one. */
  readonly serverName: string | null;
  /** The ALPN protocols offered, in order; empty without the extension. */
  readonly alpn: readonly string[];
}

const RECORD_HEADER = 5;
const RECORD_HANDSHAKE = 22;
const HANDSHAKE_HEADER = 4;
const CLIENT_HELLO = 1;
const MAX_RECORD = 16 * 1024; // 2^14, the largest plaintext fragment (RFC 8446 §5.1)
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const SNI_HOST_NAME = 0;
// A real client sends its hello in one or a few segments; many tiny ones is someone making the
// gateway re-read the same bytes, so after this many the connection just goes on.
const MAX_HELLO_CHUNKS = 64;
const HELLO_TIMEOUT_MS = 3_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** A name as SNI carries it (RFC 6066 §3: ASCII, no trailing dot); underscores are seen in the wild. */
const SNI_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

class Malformed extends Error {}

/** A bounded cursor over one TLS structure: every read past its end is a malformed hello. */
class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos === this.buf.length;
  }

  bytes(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new Malformed();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Everything not read yet. */
  rest(): Buffer {
    return this.bytes(this.buf.length - this.pos);
  }

  uint(size: 1 | 2): number {
    return this.bytes(size).readUIntBE(0, size);
  }

  /** A vector with a length prefix of `size` bytes, whose length must lie in [min, max]. */
  vector(size: 1 | 2, min: number, max: number): Reader {
    const length = this.uint(size);
    if (length < min || length > max) throw new Malformed();
    return new Reader(this.bytes(length));
  }
}

/**
 * The SNI name and ALPN list of the TLS ClientHello that `buf` starts with: 'incomplete' while
 * more bytes could still make one, 'not-hello' when these bytes are not one this parser accepts
 * whole (anything else on the wire, a malformed or oversized hello, a duplicate extension).
 */
export function parseClientHello(buf: Buffer): ClientHello | 'incomplete' | 'not-hello' {
  const message = firstHandshakeMessage(buf);
  if (typeof message === 'string') return message;
  try {
    return helloBody(new Reader(message));
  } catch (err) {
    if (err instanceof Malformed) return 'not-hello';
    throw err;
  }
}

/**
 * The body of the first handshake message, joined from the handshake records it spans (a hello
 * may be fragmented over several). Only record headers are walked until the message is complete,
 * so reading an incomplete hello again costs little.
 */
function firstHandshakeMessage(buf: Buffer): Buffer | 'incomplete' | 'not-hello' {
  const fragments: Buffer[] = [];
  let collected = 0;
  let needed = Number.POSITIVE_INFINITY;
  for (let offset = 0; ; ) {
    if (offset >= buf.length) return 'incomplete';
    if (buf[offset] !== RECORD_HANDSHAKE) return 'not-hello';
    // The record's legacy version is 3.x for every TLS version.
    if (offset + 1 < buf.length && buf[offset + 1] !== 3) return 'not-hello';
    if (offset + RECORD_HEADER > buf.length) return 'incomplete';
    const length = buf.readUInt16BE(offset + 3);
    if (length === 0 || length > MAX_RECORD) return 'not-hello';
    const start = offset + RECORD_HEADER;
    const fragment = buf.subarray(start, Math.min(start + length, buf.length));
    fragments.push(fragment);
    collected += fragment.length;
    if (needed === Number.POSITIVE_INFINITY && collected >= HANDSHAKE_HEADER) {
      const head = Buffer.concat(fragments).subarray(0, HANDSHAKE_HEADER);
      if (head[0] !== CLIENT_HELLO) return 'not-hello';
      needed = HANDSHAKE_HEADER + head.readUIntBE(1, 3);
      if (needed > MAX_HELLO_BYTES) return 'not-hello';
    } else if (collected > 0 && fragments[0]![0] !== CLIENT_HELLO) {
      return 'not-hello';
    }
    if (collected >= needed) return Buffer.concat(fragments).subarray(HANDSHAKE_HEADER, needed);
    if (fragment.length < length) return 'incomplete';
    offset = start + length;
  }
}

/** RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2, whose hellos may end before the extensions). */
function helloBody(hello: Reader): ClientHello {
  hello.bytes(2 + 32); // legacy_version, random
  hello.vector(1, 0, 32); // legacy_session_id
  if (hello.vector(2, 2, 0xfffe).rest().length % 2 !== 0) throw new Malformed(); // cipher_suites
  hello.vector(1, 1, 0xff); // legacy_compression_methods
  if (hello.done) return { serverName: null, alpn: [] };
  const extensions = hello.vector(2, 0, 0xffff);
  if (!hello.done) throw new Malformed();
  return helloExtensions(extensions);
}

function helloExtensions(extensions: Reader): ClientHello {
  const seen = new Set<number>();
  let serverName: string | null = null;
  let alpn: string[] = [];
  while (!extensions.done) {
    const type = extensions.uint(2);
    const data = extensions.vector(2, 0, 0xffff);
    // OpenSSL refuses a hello with a repeated extension; so does this parser.
    if (seen.has(type)) throw new Malformed();
    seen.add(type);
    if (type === EXT_SERVER_NAME) serverName = sniName(data);
    else if (type === EXT_ALPN) alpn = alpnProtocols(data);
  }
  return { serverName, alpn };
}

/** RFC 6066 §3: a list of names, at most one per type; only host_name (0) is defined. */
function sniName(data: Reader): string {
  const list = data.vector(2, 1, 0xffff);
  if (!data.done) throw new Malformed();
  let name: string | null = null;
  while (!list.done) {
    const type = list.uint(1);
    const value = list.vector(2, 1, 0xffff);
    if (type !== SNI_HOST_NAME) continue;
    if (name !== null) throw new Malformed();
    name = value.rest().toString('latin1').toLowerCase();
  }
  // A hello this parser would pass on anyway: no name to answer for, or one no certificate holds.
  if (name === null || !SNI_NAME.test(name)) throw new Malformed();
  return name;
}

/** RFC 7301 §3.1: a non-empty list of non-empty protocol names. */
function alpnProtocols(data: Reader): string[] {
  const list = data.vector(2, 2, 0xffff);
  if (!data.done) throw new Malformed();
  const protocols: string[] = [];
  while (!list.done) protocols.push(list.vector(1, 1, 0xff).rest().toString('latin1'));
  return protocols;
}

/**
 * Puts TLS-ALPN-01 answering in front of the server's own connection handler: the first
 * 'connection' listener, which tls.Server registers in its constructor. Listeners after it (the
 * connection limit) still see each connection the moment it is accepted, so a connection whose
 * hello is being read, or a validator's, holds a place under --max-connections like any other,
 * and may be closed as the longest idle. Returns the undo.
 */
export function answerAlpnChallenges(server: tls.Server, challenges: AlpnChallenges, options: AlpnChallengeOptions = {}): () => void {
  const own = server.rawListeners('connection')[0] as ((this: tls.Server, socket: Socket) => void) | undefined;
  if (own === undefined) throw new Error('the server has no connection handler to answer challenges in front of');
  const helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const passOn = (socket: Socket) => own.call(server, socket);

  const intercept = (socket: Socket): void => {
    // Nothing pending, nothing read: the server's own handler at once, as if this were not here.
    if (!challenges.pending()) return passOn(socket);
    readHello(socket, helloTimeoutMs, (hello) => {
      const pair = hello === null ? null : challengeCertificate(hello, challenges);
      if (pair === null) passOn(socket);
      else answerChallenge(socket, pair, handshakeTimeoutMs);
    });
  };

  server.removeListener('connection', own);
  server.prependListener('connection', intercept);
  return () => {
    if (!server.rawListeners('connection').includes(intercept)) return;
    server.removeListener('connection', intercept);
    server.prependListener('connection', own);
  };
}

/** RFC 8737 §3: the validator offers exactly one protocol, acme-tls/1, and the name it validates as SNI. */
function challengeCertificate(hello: ClientHello, challenges: AlpnChallenges): CertificatePair | null {
  if (hello.serverName === null || hello.alpn.length !== 1 || hello.alpn[0] !== ACME_TLS_ALPN) return null;
  try {
    return challenges.certificateFor(hello.serverName);
  } catch {
    // Thrown in a socket's event, it would end the process; the connection goes on as any other.
    return null;
  }
}

/**
 * Reads the ClientHello a connection starts with, then puts every byte read back: the TLSSocket
 * that takes the socket next feeds what is buffered to its TLS engine before reading on (Node's
 * initRead), so its handshake starts from the first byte. `done` gets null for a start that is not
 * a hello this parser takes, or is too large or too slow; it is not called when the connection
 * ends or is closed first.
 */
function readHello(socket: Socket, timeoutMs: number, done: (hello: ClientHello | null) => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const stop = () => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('close', stop);
  };
  const finish = (hello: ClientHello | null) => {
    stop();
    if (socket.destroyed) return;
    socket.pause();
    if (length > 0) socket.unshift(Buffer.concat(chunks, length));
    done(hello);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    length += chunk.length;
    const result = parseClientHello(Buffer.concat(chunks, length));
    if (result !== 'incomplete') finish(typeof result === 'string' ? null : result);
    else if (length >= MAX_HELLO_BYTES || chunks.length >= MAX_HELLO_CHUNKS) finish(null);
  };
  // Ended before its hello was whole: no handshake can come of it, and 'end' once emitted, nothing
  // can be put back for a handler to read.
  const onEnd = () => {
    stop();
    socket.destroy();
  };
  const onError = () => {
    stop();
    socket.destroy();
  };
  const timer = setTimeout(() => finish(null), timeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  socket.on('close', stop);
}

/** Completes the validator's handshake with the challenge certificate, then closes. */
function answerChallenge(socket: Socket, pair: CertificatePair, timeoutMs: number): void {
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ key: pair.key, cert: pair.cert });
  } catch {
    socket.destroy();
    return;
  }
  const tlsSocket = new tls.TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: [ACME_TLS_ALPN] });
  const timer = setTimeout(() => tlsSocket.destroy(), timeoutMs);
  timer.unref();
  // RFC 8737 §3: nothing is exchanged after the handshake; the validator closes, and so does this.
  tlsSocket.once('secure', () => tlsSocket.end());
  tlsSocket.on('error', () => tlsSocket.destroy());
  tlsSocket.once('close', () => clearTimeout(timer));
  // Whatever a client sends anyway is read and dropped, so its close is seen.
  tlsSocket.resume();
}
