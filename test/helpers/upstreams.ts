// Stand-in upstreams, for what the real registry cannot be made to do on demand. One family, three
// levels of control, all on a loopback port of their own and stopped with stop():
//   - startFakeUpstream: an HTTP server whose handler gets each request as it arrives (streaming,
//     stalls, resets mid-body); the request heads are recorded.
//   - startRecordingUpstream: an HTTP server that reads each whole request (head and body), records
//     it, then answers it with a replaceable responder: which headers reach the upstream, and how the
//     gateway treats response headers a registry never sends.
//   - startRawUpstream: raw bytes over TCP, for what no HTTP server library would send (a reset at an
//     exact point of a body, a CR/LF inside a header, a silent connection).
//   - startSilentUpstream and startBlackhole: an upstream that accepts and never answers, and one
//     that never even completes the TCP handshake.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { sleep } from './wait.js';

/** A request head as the upstream saw it. */
export interface UpstreamRequestHead {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Names and values as received, in order (name, value, name, value...). */
  rawHeaders: string[];
}

/** A whole request as the upstream saw it. */
export interface RecordedRequest extends UpstreamRequestHead {
  body: Buffer;
}

interface Listening {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
}

/** Listens on a free loopback port (or `port`). */
async function listen(server: net.Server, port = 0): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${bound}`, port: bound };
}

function stopHttp(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

// --- HTTP, request by request -----------------------------------------------------------------

export interface FakeUpstream extends Listening {
  readonly server: http.Server;
  /** Every request the upstream received, as it saw its head. */
  readonly requests: UpstreamRequestHead[];
  /** Resolves when the upstream's socket for request number `index` (0-based) closes. */
  socketClosed(index: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startFakeUpstream(handler: http.RequestListener): Promise<FakeUpstream> {
  const requests: UpstreamRequestHead[] = [];
  const closed: Array<Promise<void>> = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    closed.push(new Promise((resolve) => req.socket.once('close', () => resolve())));
    handler(req, res);
  });
  const address = await listen(server);
  return {
    ...address,
    server,
    requests,
    socketClosed: async (index) => {
      while (closed[index] === undefined) await sleep(5);
      return closed[index];
    },
    stop: () => stopHttp(server),
  };
}

// --- HTTP, whole requests recorded --------------------------------------------------------------

export type Responder = (req: RecordedRequest, res: http.ServerResponse) => void;

export interface RecordingUpstream extends Listening {
  /** Every request received in full, in order. */
  readonly requests: RecordedRequest[];
  /** Replaces how the next requests are answered. */
  respondWith(responder: Responder): void;
  stop(): Promise<void>;
}

/** Answers like a registry's API root: 200 `{}` with the API version header. */
export const answerLikeRegistry: Responder = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'docker-distribution-api-version': 'registry/2.0' });
  res.end('{}');
};

export async function startRecordingUpstream(responder: Responder = answerLikeRegistry): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  let respond = responder;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: [...req.rawHeaders],
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(recorded);
      respond(recorded, res);
    });
  });
  const address = await listen(server);
  return {
    ...address,
    requests,
    respondWith(next) {
      respond = next;
    },
    stop: () => stopHttp(server),
  };
}

/** Lower-cased names of the headers of a recorded request. */
export function headerNames(req: UpstreamRequestHead): string[] {
  const names: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) names.push(req.rawHeaders[i]!.toLowerCase());
  return names;
}

// --- raw TCP ------------------------------------------------------------------------------------

export interface RawExchange {
  readonly socket: net.Socket;
  readonly method: string;
  /** Request target as sent. */
  readonly target: string;
  /** The request head, without the blank line. */
  readonly head: string;
  /** Body bytes that came with the head; later ones arrive as the socket's 'data' events. */
  readonly rest: Buffer;
}

export interface RawUpstream extends Listening {
  /** Every request head received, in order. */
  readonly exchanges: RawExchange[];
  /** Upstream connections not closed yet. */
  openSockets(): number;
  stop(): Promise<void>;
}

/** Calls `handler` once per connection, with its first request head; the handler owns the socket from then on. */
export async function startRawUpstream(handler: (exchange: RawExchange) => void, port = 0): Promise<RawUpstream> {
  const exchanges: RawExchange[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause();
      const head = received.subarray(0, end).toString('latin1');
      const [method = '', target = ''] = head.split(' ');
      const exchange: RawExchange = { socket, method, target, head, rest: received.subarray(end + 4) };
      exchanges.push(exchange);
      handler(exchange);
      socket.resume();
    };
    socket.on('data', onData);
  });
  const address = await listen(server, port);
  return {
    ...address,
    exchanges,
    openSockets: () => sockets.size,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// --- no answer at all ------------------------------------------------------------------------

/** Accepts connections and never answers; held connections are dropped by stop(). */
export async function startSilentUpstream(port = 0): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  const held = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    held.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => held.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of held) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A host that never completes a TCP handshake, as a firewalled or vanished one: a process that
 * listens with a backlog of one and never accepts (it is blocked). Once two connections fill its
 * queue, the kernel drops every further SYN.
 */
export async function startBlackhole(): Promise<{ url: string; stop(): void }> {
  const child: ChildProcess = spawn(process.execPath, ['-e', `
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      require('node:fs').writeSync(1, server.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const fillers: net.Socket[] = [];
  for (;;) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    fillers.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 300);
    });
    if (!connected) break;
    if (fillers.length > 64) throw new Error('the blackhole kept accepting connections');
  }
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      for (const socket of fillers) socket.destroy();
      child.kill('SIGKILL');
    },
  };
}

/** A response head, CRLF-terminated lines joined as given (so a test can put anything in them). */
export function responseHead(statusLine: string, headers: readonly string[]): string {
  return `${statusLine}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
}
