// Raw bytes over TLS to the gateway, for requests no HTTP client would send (two Authorization
// headers, broken framing): returns everything the gateway wrote back until it closed or went quiet.
import tls from 'node:tls';

export interface RawAnswer {
  /** Status of the first response, or 0 when none came. */
  readonly status: number;
  /** Everything received, as latin1 text. */
  readonly text: string;
  /** Whether the gateway closed the connection (rather than the wait running out). */
  readonly closed: boolean;
}

export function rawTlsRequest(port: number, ca: string, request: string | Buffer, waitMs = 2_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, text, closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('secureConnect', () => socket.write(request));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err) => {
      if (chunks.length > 0) finish(true);
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}
