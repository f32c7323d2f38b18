// An upstream that answers with raw bytes over TCP, for what no HTTP server library would send:
// a reset at an exact point of a body, a CR/LF inside a header, a silent connection.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

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

export interface RawUpstream {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    exchanges,
    openSockets: () => sockets.size,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A response head, CRLF-terminated lines joined as given (so a test can put anything in them). */
export function responseHead(statusLine: string, headers: readonly string[]): string {
  return `${statusLine}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
}
