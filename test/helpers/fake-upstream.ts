// A misbehaving upstream, for the faults a real registry cannot be made to produce (a reset
// mid-body, a stall), and a gateway in front of it.
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { startGateway, type RunningGateway } from '../../src/server/gateway.js';
import { basicAuthorization } from './gateway.js';
import { writeHtpasswd } from './htpasswd.js';
import { makeTestPki, type TestPki } from './pki.js';

export interface FakeUpstream {
  readonly url: string;
  readonly server: http.Server;
  /** Every request the upstream received, as it saw its head. */
  readonly requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[] }>;
  /** Resolves when the upstream's socket for request number `index` (0-based) closes. */
  socketClosed(index: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startFakeUpstream(handler: http.RequestListener): Promise<FakeUpstream> {
  const requests: FakeUpstream['requests'] = [];
  const closed: Array<Promise<void>> = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    closed.push(new Promise((resolve) => req.socket.once('close', () => resolve())));
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    socketClosed: async (index) => {
      while (closed[index] === undefined) await new Promise((r) => setTimeout(r, 5));
      return closed[index];
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface GatewayBeforeUpstream {
  readonly gateway: RunningGateway;
  readonly pki: TestPki;
  readonly authorization: string;
  readonly logLines: () => Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** The gateway (user alice, password `alice-secret`) in front of any upstream URL. */
export async function startGatewayBefore(upstreamUrl: string, extraArgs: string[] = []): Promise<GatewayBeforeUpstream> {
  const dir = await mkdtemp(join(tmpdir(), 'rgw-fault-'));
  const pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
  const htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 5 }]);
  const argv = ['--listen', '127.0.0.1:0', '--upstream', upstreamUrl, '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--htpasswd', htpasswd];
  const config = await loadConfig([...argv, ...extraArgs], {});
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean)) });
  const gateway = await startGateway(config, { logger });
  return {
    gateway,
    pki,
    authorization: basicAuthorization('alice', 'alice-secret'),
    logLines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: async () => {
      await gateway.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
