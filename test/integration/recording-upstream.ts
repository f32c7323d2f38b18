// A tiny plain-HTTP upstream that records every request the gateway forwards to it, for the few
// things the real registry cannot show: which request headers reach it, and how the gateway
// treats response headers the real registry never sends (Keep-Alive, Connection-named ones).
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestStack, type TestStack, type TestStackOptions } from '../helpers/gateway.js';

export interface RecordedRequest {
  method: string;
  url: string;
  /** Names and values as received, in order (name, value, name, value...). */
  rawHeaders: string[];
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type Responder = (req: RecordedRequest, res: ServerResponse) => void;

export interface RecordingUpstream {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Replaces how the next requests are answered. */
  respondWith(responder: Responder): void;
  close(): Promise<void>;
}

/** Answers like a registry's API root: 200 `{}` with the API version header. */
export const answerLikeRegistry: Responder = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'docker-distribution-api-version': 'registry/2.0' });
  res.end('{}');
};

export async function startRecordingUpstream(responder: Responder = answerLikeRegistry): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  let respond = responder;
  const server = createServer((req, res) => {
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respondWith(next) {
      respond = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Lower-cased names of the headers of a recorded request. */
export function headerNames(req: RecordedRequest): string[] {
  const names: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) names.push(req.rawHeaders[i]!.toLowerCase());
  return names;
}

/**
 * A test stack whose gateway forwards to `upstream` instead of the stack's registry: the later
 * `--upstream` flag wins over the one the helper passes.
 */
export async function startStackInFrontOf(upstream: RecordingUpstream, options: TestStackOptions = {}): Promise<TestStack> {
  const stack = await startTestStack({ ...options, extraArgs: [...(options.extraArgs ?? []), '--upstream', upstream.url] });
  if (stack.config.upstream.origin !== upstream.url) {
    await stack.stop();
    throw new Error(`the gateway was configured for ${stack.config.upstream.origin}, not ${upstream.url}`);
  }
  return stack;
}
