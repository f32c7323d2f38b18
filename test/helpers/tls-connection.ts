// One kept-alive TLS connection to the gateway, written to byte for byte: for requests Node's
// client would rewrite (its own Connection header, repeated or folded headers), and for tests that
// must know which process of a --workers gateway serves them (a connection stays with the process
// that accepted it).
import tls from 'node:tls';

export interface ConnectionResponse {
  readonly status: number;
  /** Header names lower-cased; a repeated header's values joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface TlsConnection {
  /**
   * Sends one request head (CRLF line endings, ending with the empty line) and an optional body,
   * and resolves with the response, read by its Content-Length (none for `head`).
   */
  send(head: string, options?: { body?: Buffer; head?: boolean }): Promise<ConnectionResponse>;
  /** Whether the gateway closed the connection. */
  readonly closed: boolean;
  close(): void;
}

export function openTlsConnection(port: number, ca: string): Promise<TlsConnection> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    let buffered = Buffer.alloc(0);
    let connected = false;
    let closed = false;
    let waiting: { head: boolean; resolve: (res: ConnectionResponse) => void; reject: (err: Error) => void } | null = null;

    const tryParse = (): void => {
      if (waiting === null) return;
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const at = line.indexOf(':');
        const name = line.slice(0, at).trim().toLowerCase();
        const value = line.slice(at + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      if (headers['transfer-encoding'] !== undefined) {
        waiting.reject(new Error(`a chunked response is not read here: ${lines.join(' | ')}`));
        waiting = null;
        return;
      }
      const length = waiting.head || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
      if (buffered.length < end + 4 + length) return;
      const body = Buffer.from(buffered.subarray(end + 4, end + 4 + length));
      buffered = buffered.subarray(end + 4 + length);
      const done = waiting;
      waiting = null;
      done.resolve({ status, headers, body });
    };

    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      tryParse();
    });
    const onGone = (err?: Error): void => {
      closed = true;
      waiting?.reject(err ?? new Error('the gateway closed the connection'));
      waiting = null;
    };
    socket.on('close', () => onGone());
    socket.on('error', (err) => {
      if (!connected) reject(err);
      onGone(err);
    });
    socket.once('secureConnect', () => {
      connected = true;
      resolve({
        send(head, options = {}) {
          if (waiting !== null) return Promise.reject(new Error('one request at a time'));
          if (closed) return Promise.reject(new Error('the connection is closed'));
          return new Promise((res, rej) => {
            waiting = { head: options.head ?? false, resolve: res, reject: rej };
            socket.write(head);
            if (options.body) socket.write(options.body);
          });
        },
        get closed() {
          return closed;
        },
        close() {
          socket.destroy();
        },
      });
    });
  });
}

/** A request head: the request line, then each [name, value] in order (repeats allowed), then the empty line. */
export function requestHead(method: string, path: string, headers: ReadonlyArray<readonly [string, string]>): string {
  return `${method} ${path} HTTP/1.1\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
}
