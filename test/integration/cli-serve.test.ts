// The built command as users run it: `registry-gateway serve`, its exit codes and signals.
import { rm } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, makeGatewayFiles } from '../helpers/gateway.js';
import { spawnCli } from '../helpers/gateway-process.js';
import type { TestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/tools.js';
import { startFakeUpstream } from '../helpers/upstreams.js';
import { eventually, sleep } from '../helpers/wait.js';

let dir: string;
let pki: TestPki;
let htpasswd: string;

beforeAll(async () => {
  ({ dir, pki, htpasswd } = await makeGatewayFiles('rgw-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  const cli = spawnCli(args, { env, stdin: 'ignore' });
  return { ...cli, output: () => ({ stdout: cli.stdout(), stderr: cli.stderr() }) };
}

describe('registry-gateway', () => {
  it('lists its commands, and each answers --help', async () => {
    const top = run(['--help']);
    expect(await top.exit).toBe(0);
    for (const command of ['serve', 'certs', 'htpasswd']) {
      expect(top.output().stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
      const help = run([command, '--help']);
      expect(await help.exit).toBe(0);
      expect(help.output().stdout).toContain(`Usage: registry-gateway ${command}`);
    }
  });

  it('names an unknown command and exits 2', async () => {
    const cli = run(['sevre']);
    expect(await cli.exit).toBe(2);
    expect(cli.output().stderr).toContain('unknown command "sevre"');
  });
});

describe('registry-gateway serve', () => {
  it('shows every option with its variable and default in --help', async () => {
    const cli = run(['serve', '--help']);
    expect(await cli.exit).toBe(0);
    const { stdout } = cli.output();
    for (const text of ['--listen HOST:PORT', 'GATEWAY_LISTEN', '(default 0.0.0.0:8443)', '--upstream URL', 'GATEWAY_UPSTREAM',
      '(default http://127.0.0.1:5000)', '--tls-cert FILE', '(default certs/server.crt)', '--tls-key FILE', '(default certs/server.key)',
      '--htpasswd FILE', '(default ./htpasswd)', '--realm TEXT', '(default Registry Realm)', '--public-url URL', 'GATEWAY_PUBLIC_URL',
      '--log-level LEVEL', '(default info)']) {
      expect(stdout).toContain(text);
    }
  });

  it('reports every configuration problem before listening and exits 2', async () => {
    const port = await freePort();
    const cli = run(['serve', '--listen', `127.0.0.1:${port}`, '--upstream', 'ftp://x', '--tls-cert', join(dir, 'nope.crt'), '--htpasswd', htpasswd], {
      GATEWAY_TLS_KEY: join(dir, 'nope.key'),
    });
    expect(await cli.exit).toBe(2);
    const { stderr } = cli.output();
    expect(stderr).toContain('invalid configuration (3 problems)');
    expect(stderr).toMatch(/--upstream: .*http:\/\//);
    expect(stderr).toMatch(/--tls-cert: .*nope\.crt does not exist/);
    expect(stderr).toMatch(/GATEWAY_TLS_KEY: .*nope\.key does not exist/);
  });

  it('names an unknown flag and exits 2', async () => {
    const cli = run(['serve', '--listne', '0.0.0.0:1']);
    expect(await cli.exit).toBe(2);
    expect(cli.output().stderr).toContain("'--listne'");
  });

  it('on SIGTERM stops accepting, lets the in-flight request finish and exits 0', async () => {
    const upstream = await startFakeUpstream((_req, res) => {
      setTimeout(() => res.end('{"slow":"but complete"}'), 800);
    });
    const port = await freePort();
    const cli = run(['serve', '--listen', `127.0.0.1:${port}`, '--upstream', upstream.url, '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey,
      '--htpasswd', htpasswd]);
    try {
      await cli.waitForOutput('listening');
      const get = (path: string) =>
        new Promise<{ status: number; body: string }>((res, rej) => {
          const req = https.request({ host: '127.0.0.1', port, path, ca: pki.caPem, servername: 'localhost', agent: false,
            headers: { authorization: basicAuthorization('alice', 'alice-secret') } }, (r) => {
            let body = '';
            r.on('data', (c: Buffer) => (body += c.toString()));
            r.on('end', () => res({ status: r.statusCode ?? 0, body }));
          });
          req.on('error', rej);
          req.end();
        });
      const inflight = get('/v2/slow');
      // The gateway's own look at /v2/ at start reaches the upstream too: wait for this request.
      await eventually(() => upstream.requests.some((r) => r.url === '/v2/slow'), 30_000, 10);
      cli.child.kill('SIGTERM');
      await sleep(200);
      await expect(get('/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(await inflight).toEqual({ status: 200, body: '{"slow":"but complete"}' });
      expect(await cli.exit).toBe(0);
      expect(cli.output().stdout).toContain('shutting down');
    } finally {
      cli.child.kill('SIGKILL');
      await upstream.stop();
    }
  });
});
