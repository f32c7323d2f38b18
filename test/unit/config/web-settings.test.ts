// The web UI's options and the record of events with its webhooks, through parseConfig as `serve`
// reads them: each refusal names its option and says what to do.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

function problemsOf(argv: string[], env: Record<string, string> = {}): readonly string[] {
  const { config, problems } = parseConfig(argv, env);
  expect(config).toBeNull();
  return problems;
}

describe('--ui and its sessions', () => {
  it('is on by default, keeping the session secret and the record beside the certificate', () => {
    const { config, problems } = parseConfig([], {});
    expect(problems).toEqual([]);
    expect(config?.ui).toEqual({ sessionKeyFile: 'certs/session.key', sessionTtlS: 43200 });
    expect(config?.events.file).toBe('certs/events.jsonl');
    const moved = parseConfig(['--tls-cert', '/etc/gw/tls/server.crt', '--tls-key', '/etc/gw/tls/server.key'], {}).config;
    expect(moved?.ui?.sessionKeyFile).toBe('/etc/gw/tls/session.key');
    expect(moved?.events.file).toBe('/etc/gw/tls/events.jsonl');
  });

  it('turns off with --no-ui, --ui off or GATEWAY_UI=off', () => {
    expect(parseConfig(['--no-ui'], {}).config?.ui).toBeNull();
    expect(parseConfig(['--ui', 'off'], {}).config?.ui).toBeNull();
    expect(parseConfig([], { GATEWAY_UI: 'off' }).config?.ui).toBeNull();
    expect(parseConfig(['--ui', '--session-ttl', '600'], {}).config?.ui?.sessionTtlS).toBe(600);
  });

  it('is off with --auth upstream, and refused there when asked for', () => {
    expect(parseConfig(['--auth', 'upstream'], {}).config?.ui).toBeNull();
    expect(problemsOf(['--auth', 'upstream', '--ui', 'on'])).toEqual([expect.stringMatching(/^--ui on cannot be used with --auth upstream: .*no users/)]);
  });

  it('refuses session options with the UI off, and a bad lifetime', () => {
    expect(problemsOf(['--no-ui', '--session-ttl', '600'])).toEqual([expect.stringMatching(/^--session-ttl only applies with the web UI on/)]);
    expect(problemsOf(['--session-ttl', '5'])).toEqual([expect.stringMatching(/^--session-ttl: "5" is not a lifetime/)]);
    expect(problemsOf(['--ui=maybe'])).toEqual(['--ui: "maybe" is neither on nor off']);
  });
});

describe('the record of events and webhooks', () => {
  it('takes repeated --webhook flags, or a comma-separated variable, with a secret', () => {
    const secret = 'a-webhook-secret-of-some-length';
    const { config, problems } = parseConfig(['--webhook', 'https://ci.example.com/hook', '--webhook', 'http://10.0.0.5:8080/events', '--webhook-secret', secret], {});
    expect(problems).toEqual([]);
    expect(config?.events.webhooks.map(String)).toEqual(['https://ci.example.com/hook', 'http://10.0.0.5:8080/events']);
    expect(config?.events.webhookSecret).toBe(secret);
    const fromEnv = parseConfig([], { GATEWAY_WEBHOOK: 'https://a.example/h, https://b.example/h' }).config;
    expect(fromEnv?.events.webhooks.map(String)).toEqual(['https://a.example/h', 'https://b.example/h']);
  });

  it('refuses a URL that is not http(s), credentials in a URL, a short or lone secret', () => {
    expect(problemsOf(['--webhook', 'ftp://x.example/h'])).toEqual([expect.stringMatching(/^--webhook: "ftp:\/\/x.example\/h" is not an http/)]);
    expect(problemsOf(['--webhook', 'https://user:pw@x.example/h'])).toEqual([expect.stringMatching(/credentials in a webhook URL would be logged/)]);
    expect(problemsOf(['--webhook', 'https://x.example/h', '--webhook-secret', 'short'])).toEqual([expect.stringMatching(/^--webhook-secret: at least 16 characters/)]);
    expect(problemsOf(['--webhook-secret', 'long-enough-secret-value'])).toEqual([expect.stringMatching(/^--webhook-secret only applies with --webhook/)]);
  });

  it('bounds the record by count and age, and refuses 0 for either', () => {
    const { config } = parseConfig(['--events-max', '500', '--events-max-age', '3600'], {});
    expect(config?.events.maxEvents).toBe(500);
    expect(config?.events.maxAgeMs).toBe(3_600_000);
    expect(problemsOf(['--events-max', '0'])).toEqual([expect.stringMatching(/^--events-max: 0 would keep no events/)]);
    expect(problemsOf(['--events-max-age', 'soon'])).toEqual([expect.stringMatching(/^--events-max-age: "soon" is not a whole number/)]);
    expect(problemsOf(['--webhook-queue', '0'])).toEqual([expect.stringMatching(/^--webhook-queue: 0 would keep no event/)]);
  });
});
