// `registry-gateway healthcheck`: for container health checks, which must work with nothing but
// node in the image (no curl). Exit 0 when the endpoint answers 200.

import https from 'node:https';
import { parseArgs } from 'node:util';
import { parseListen } from '../config/validate.js';

const TIMEOUT_MS = 5_000;

export const HEALTHCHECK_USAGE = `Usage: registry-gateway healthcheck [--url URL]

Asks the gateway's own health endpoint and exits 0 when it answers 200, 1 otherwise.
The default URL is https://127.0.0.1:PORT/readyz, PORT taken from GATEWAY_LISTEN (default 8443):
ready means the gateway serves and its upstream registry answers /v2/ with 200 (a registry
asking for its own login is not ready: the gateway does authentication). When not ready, the
reason /readyz gives is printed on standard error.
The certificate is not verified: this checks a local listener, not its identity.

Options:
  --url URL   the endpoint to ask, e.g. https://127.0.0.1:8443/healthz
  -h, --help  show this help
`;

function defaultUrl(env: NodeJS.ProcessEnv): string {
  const listen = parseListen(env.GATEWAY_LISTEN ?? '0.0.0.0:8443');
  return `https://127.0.0.1:${listen.ok ? listen.value.port : 8443}/readyz`;
}

function probe(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, agent: false, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk.slice(0, 1000)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

export async function healthcheck(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let url: string;
  try {
    const { values } = parseArgs({ args: argv, options: { url: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      process.stdout.write(HEALTHCHECK_USAGE);
      return 0;
    }
    url = values.url ?? defaultUrl(env);
  } catch (err) {
    process.stderr.write(`registry-gateway healthcheck: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    const { status, body } = await probe(url);
    if (status === 200) return 0;
    process.stderr.write(`registry-gateway healthcheck: ${url} answered ${status} ${body.trim()}\n`);
    return 1;
  } catch (err) {
    process.stderr.write(`registry-gateway healthcheck: ${url}: ${(err as Error).message}\n`);
    return 1;
  }
}
