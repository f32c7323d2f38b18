// /metrics on a listener of its own (--metrics-listen): plain HTTP for a Prometheus on the same
// host or network, apart from the public port, so scrapes need no credentials and the internet
// side never sees them.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';

export interface MetricsListener {
  readonly url: string;
  close(): Promise<void>;
}

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function startMetricsListener(
  address: { readonly host: string; readonly port: number },
  render: () => Promise<string>,
  log: Logger,
): Promise<MetricsListener> {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return plain(res, 404, 'not found: metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'use GET\n', { allow: 'GET, HEAD' });
    render().then(
      (text) => plain(res, 200, text, { 'content-type': CONTENT_TYPE }, req.method === 'HEAD'),
      (err: unknown) => {
        log.error({ err }, 'collecting metrics failed');
        plain(res, 500, 'collecting metrics failed\n');
      },
    );
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new GatewayError('LISTEN_FAILED', `cannot listen on ${address.host}:${address.port} for metrics: ${err.code ?? err.message}; check --metrics-listen`)),
    );
    server.listen(address.port, address.host, () => {
      const { port } = server.address() as AddressInfo;
      const host = address.host.includes(':') ? `[${address.host}]` : address.host;
      log.info({ metrics: `http://${host}:${port}/metrics` }, 'serving metrics');
      resolve({
        url: `http://${host}:${port}/metrics`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function plain(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}, headOnly = false): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(headOnly ? undefined : body);
}
