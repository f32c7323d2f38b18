// A webhook receiver of the tests' own: a plain HTTP server that keeps every delivery (headers and
// parsed body), can answer with a chosen status, and can be switched off and on again on the same
// port, as a real receiver that goes down for a while would be.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The envelope's one event. */
  readonly event: Record<string, any>;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:PORT/hook` */
  readonly url: string;
  readonly deliveries: Delivery[];
  /** Status answered from now on (200 by default). */
  answer(status: number): void;
  /** Closes the port: deliveries fail to connect until start(). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  let status = 200;
  let server: Server | null = null;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (status >= 200 && status < 300) {
            const parsed = JSON.parse(body) as { events: Array<Record<string, any>> };
            deliveries.push({ headers: req.headers, body, event: parsed.events[0]! });
          }
          res.writeHead(status).end();
        });
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as AddressInfo).port;
        resolve();
      });
    });
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}/hook`;
    },
    deliveries,
    answer: (s) => {
      status = s;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        const s = server;
        server = null;
        if (s === null) return resolve();
        s.closeAllConnections();
        s.close(() => resolve());
      }),
    start: listen,
  };
}

/** The signature a delivery of `body` must carry with `secret`. */
export function expectedSignature(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
