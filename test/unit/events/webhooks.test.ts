// Webhooks against a real local receiver: in order, signed, retried until delivered, bounded, and
// never holding up the caller.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { GatewayEvent } from '../../../src/events/event.js';
import { createWebhooks, envelopeOf, signatureOf, type WebhookOptions, type Webhooks } from '../../../src/events/webhooks.js';
import { eventually } from '../../helpers/wait.js';
import { sampleEvent } from '../../helpers/events.js';

const SOURCE = { host: 'gateway.example', instance: 'gateway.example:1234' };
const SECRET = 'a shared secret';

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly id: string;
}

interface Receiver {
  readonly url: URL;
  readonly port: number;
  readonly received: Received[];
  /** The most requests it was answering at once. */
  readonly mostAtOnce: () => number;
  stop(): Promise<void>;
}

/** A receiver on 127.0.0.1 answering the nth request (from 1) with answer(n); null: never answers. */
async function startReceiver(answer: (n: number) => number | null = () => 200, port = 0): Promise<Receiver> {
  const received: Received[] = [];
  let atOnce = 0;
  let most = 0;
  const server = createServer((req, res) => {
    atOnce++;
    most = Math.max(most, atOnce);
    res.on('close', () => atOnce--);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ headers: req.headers, body, id: (JSON.parse(body) as { events: Array<{ id: string }> }).events[0]!.id });
      const status = answer(received.length);
      if (status === null) return;
      res.writeHead(status, status >= 300 && status < 400 ? { location: 'http://127.0.0.1:9/elsewhere' } : {}).end('thanks');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  onTestFinished(stop);
  return { url: new URL(`http://127.0.0.1:${bound}/hook?token=t0k3n`), port: bound, received, mostAtOnce: () => most, stop };
}

function capturingLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

function webhooks(options: Partial<WebhookOptions> & { urls: readonly URL[] }): Webhooks {
  const hooks = createWebhooks({ secret: SECRET, queueLimit: 100, log: pino({ level: 'silent' }), source: SOURCE, backoffMs: [50, 100], timeoutMs: 2_000, ...options });
  onTestFinished(() => hooks.close(100));
  return hooks;
}

let serial = 0;
const event = (fields: Partial<GatewayEvent> = {}): GatewayEvent => sampleEvent(++serial, fields);

describe('createWebhooks', () => {
  it('delivers events in order, one at a time, in the registry\'s envelope, with headers and a verifiable signature', async () => {
    const receiver = await startReceiver();
    const delivered: string[] = [];
    const hooks = webhooks({ urls: [receiver.url], onDelivered: (url) => delivered.push(url) });
    const events = [event(), event({ action: 'denied', tag: null, digest: null, mediaType: null, size: null, reason: 'access denied: push on team/app', status: 403 }), event(), event(), event()];
    for (const e of events) hooks.send(e);

    expect(await eventually(() => receiver.received.length === 5)).toBe(true);
    expect(receiver.received.map((r) => r.id)).toEqual(events.map((e) => e.id));
    expect(receiver.mostAtOnce()).toBe(1);
    expect(await eventually(() => hooks.pending() === 0)).toBe(true);
    expect(delivered).toEqual(Array(5).fill(`http://127.0.0.1:${receiver.port}/hook`));

    const [first, denied] = receiver.received;
    expect(first!.headers['content-type']).toBe('application/vnd.docker.distribution.events.v1+json');
    expect(first!.headers['x-registry-gateway-event']).toBe('push');
    expect(first!.headers['x-registry-gateway-delivery']).toBe(events[0]!.id);
    const hmac = createHmac('sha256', SECRET).update(Buffer.from(first!.body, 'utf8')).digest('hex');
    expect(first!.headers['x-registry-gateway-signature']).toBe(`sha256=${hmac}`);
    expect(signatureOf(first!.body, SECRET)).toBe(`sha256=${hmac}`);
    expect(JSON.parse(first!.body)).toEqual({
      events: [
        {
          id: events[0]!.id,
          timestamp: events[0]!.timestamp,
          action: 'push',
          target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: events[0]!.size, digest: events[0]!.digest, repository: 'team/app', tag: events[0]!.tag },
          request: { addr: '192.0.2.7', method: 'PUT', path: events[0]!.path },
          actor: { name: 'alice' },
          source: { addr: 'gateway.example', instanceID: 'gateway.example:1234' },
          status: 201,
          via: 'registry',
        },
      ],
    });
    expect(denied!.headers['x-registry-gateway-event']).toBe('denied');
    expect(JSON.parse(denied!.body)).toEqual(envelopeOf(events[1]!, SOURCE));
    expect(JSON.parse(denied!.body).events[0]).toMatchObject({ target: { repository: 'team/app' }, reason: 'access denied: push on team/app', status: 403 });
  });

  it('sends no signature without a secret, and the URL\'s userinfo as Basic credentials', async () => {
    const receiver = await startReceiver();
    const url = new URL(receiver.url);
    url.username = 'hook';
    url.password = 'p%40ss';
    const hooks = webhooks({ urls: [url], secret: null });
    hooks.send(event());
    expect(await eventually(() => receiver.received.length === 1)).toBe(true);
    expect(receiver.received[0]!.headers['x-registry-gateway-signature']).toBeUndefined();
    expect(receiver.received[0]!.headers.authorization).toBe(`Basic ${Buffer.from('hook:p@ss').toString('base64')}`);
  });

  it('retries an event until it is answered 2xx (a redirect and a 4xx included), then sends the next ones in order', async () => {
    const answers = [302, 404, 500];
    const receiver = await startReceiver((n) => answers[n - 1] ?? 200);
    const { log, lines } = capturingLog();
    const failed: string[] = [];
    const hooks = webhooks({ urls: [receiver.url], log, onFailedAttempt: (url) => failed.push(url) });
    const events = [event(), event(), event()];
    for (const e of events) hooks.send(e);

    expect(await eventually(() => receiver.received.length === 6)).toBe(true);
    const [a, b, c] = events.map((e) => e.id);
    expect(receiver.received.map((r) => r.id)).toEqual([a, a, a, a, b, c]);
    expect(failed).toHaveLength(3);
    const warning = lines.find((line) => line.msg?.toString().startsWith('webhook delivery failed'));
    // Named without its query, which may hold a token.
    expect(warning).toMatchObject({ level: 40, webhook: `http://127.0.0.1:${receiver.port}/hook`, failure: 'status 302', retryInMs: 50 });
    expect(JSON.stringify(lines)).not.toContain('t0k3n');
    expect(JSON.stringify(lines)).not.toContain(SECRET);
    expect(await eventually(() => lines.some((line) => line.msg === 'webhook delivered again' && line.level === 30))).toBe(true);
  });

  it('delivers everything queued, in order, to a receiver that was down and comes back on its port', async () => {
    const first = await startReceiver();
    await first.stop();
    let failures = 0;
    const hooks = webhooks({ urls: [first.url], onFailedAttempt: () => failures++ });
    const events = [event(), event(), event()];
    for (const e of events) hooks.send(e);
    expect(await eventually(() => failures >= 2)).toBe(true);
    expect(hooks.pending()).toBe(3);

    const back = await startReceiver(() => 200, first.port);
    expect(await eventually(() => back.received.length === 3)).toBe(true);
    expect(back.received.map((r) => r.id)).toEqual(events.map((e) => e.id));
    expect(await eventually(() => hooks.pending() === 0)).toBe(true);
  });

  it('drops the oldest undelivered events when the queue is full, counts and logs them, and delivers the newest', async () => {
    const down = await startReceiver();
    await down.stop();
    const { log, lines } = capturingLog();
    const dropped: string[] = [];
    let failures = 0;
    const hooks = webhooks({ urls: [down.url], queueLimit: 3, log, onDropped: (url) => dropped.push(url), onFailedAttempt: () => failures++ });
    const events = [event(), event(), event(), event(), event()];
    for (const e of events) hooks.send(e);
    expect(dropped).toEqual([`http://127.0.0.1:${down.port}/hook`, `http://127.0.0.1:${down.port}/hook`]);
    expect(hooks.pending()).toBe(3);
    expect(lines.find((line) => line.msg?.toString().startsWith('webhook queue full'))).toMatchObject({ level: 40, dropped: 1, queueLimit: 3 });

    // The first event was being sent when it was dropped: its attempt fails before the receiver is back.
    expect(await eventually(() => failures >= 1)).toBe(true);
    const back = await startReceiver(() => 200, down.port);
    expect(await eventually(() => back.received.length === 3)).toBe(true);
    expect(back.received.map((r) => r.id)).toEqual(events.slice(2).map((e) => e.id));
    // The second drop came within 10 s of the first line: logged with its count at close.
    await hooks.close(100);
    expect(lines.filter((line) => line.msg?.toString().startsWith('webhook queue full')).map((line) => line.dropped)).toEqual([1, 1]);
  });

  it('returns from send at once while the receiver never answers, gives up an attempt at the timeout, and retries it', async () => {
    const receiver = await startReceiver(() => null);
    const { log, lines } = capturingLog();
    let failures = 0;
    const hooks = webhooks({ urls: [receiver.url], timeoutMs: 100, log, onFailedAttempt: () => failures++ });
    const events = [event(), event(), event()];
    const started = performance.now();
    for (const e of events) hooks.send(e);
    expect(performance.now() - started).toBeLessThan(50);
    expect(hooks.pending()).toBe(3);

    expect(await eventually(() => failures >= 1 && receiver.received.length >= 2)).toBe(true);
    expect(receiver.received.slice(0, 2).map((r) => r.id)).toEqual([events[0]!.id, events[0]!.id]);
    expect(lines.find((line) => line.msg?.toString().startsWith('webhook delivery failed'))).toMatchObject({ failure: 'no answer in 100 ms' });

    const closing = performance.now();
    await hooks.close(200);
    expect(performance.now() - closing).toBeLessThan(2_000);
    expect(lines.find((line) => line.msg?.toString().includes('not delivered before the gateway stopped'))).toMatchObject({ level: 40, undelivered: 3 });
    hooks.send(event());
    expect(hooks.pending()).toBe(3);
  });

  it('close delivers what is already queued within the grace, and warns of nothing then', async () => {
    const receiver = await startReceiver();
    const { log, lines } = capturingLog();
    const hooks = webhooks({ urls: [receiver.url], log });
    const events = [event(), event(), event()];
    for (const e of events) hooks.send(e);
    await hooks.close(5_000);
    expect(receiver.received.map((r) => r.id)).toEqual(events.map((e) => e.id));
    expect(hooks.pending()).toBe(0);
    expect(lines.filter((line) => (line.level as number) >= 40)).toEqual([]);
  });
});
