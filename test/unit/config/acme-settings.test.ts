// The ACME options (`--acme` and its companions), through parseConfig as `serve` reads them: what
// is refused names its option and says what to do; what is taken becomes config.tls.acme.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

const DIRECTORY = 'https://acme.example.net/directory';

/** The problems of `serve` with these flags (and a gateway that otherwise starts). */
function problemsOf(argv: string[], env: Record<string, string> = {}): readonly string[] {
  const { config, problems } = parseConfig(argv, env);
  expect(config).toBeNull();
  return problems;
}

describe('--acme options', () => {
  it('takes a directory URL, names, contact and EAB into config.tls.acme, with the files under the certs folder', () => {
    const hmacKey = 'c2VjcmV0LWtleS1mb3ItdGVzdHM';
    const { config, problems } = parseConfig(
      ['--acme', DIRECTORY, '--acme-domains', 'Registry.Example.com, mirror.example.com', '--acme-email', 'ops@example.com', '--acme-eab-kid', 'kid-1', '--acme-eab-hmac-key', hmacKey, '--acme-http-listen', '0.0.0.0:80'],
      {},
    );
    expect(problems).toEqual([]);
    expect(config?.tls.acme).toEqual({
      directoryUrl: DIRECTORY,
      email: 'ops@example.com',
      domains: ['registry.example.com', 'mirror.example.com'],
      caCertFile: null,
      eab: { kid: 'kid-1', hmacKey },
      httpListen: { host: '0.0.0.0', port: 80 },
      folder: 'certs/acme',
      httpsPort: 8443,
    });
    // No self-made certificate with --acme.
    expect(config?.tls.autoCertificate).toBeNull();
  });

  it('maps letsencrypt and letsencrypt-staging to their directories', () => {
    const of = (name: string) => parseConfig(['--acme', name, '--public-url', 'https://registry.example.com'], {}).config?.tls.acme;
    expect(of('letsencrypt')?.directoryUrl).toBe('https://acme-v02.api.letsencrypt.org/directory');
    expect(of('letsencrypt-staging')?.directoryUrl).toBe('https://acme-staging-v02.api.letsencrypt.org/directory');
    expect(of('LetsEncrypt')?.directoryUrl).toBe('https://acme-v02.api.letsencrypt.org/directory');
    // The names default to --public-url's host; the published port is where redirects go.
    expect(of('letsencrypt')).toMatchObject({ domains: ['registry.example.com'], httpsPort: 443 });
  });

  it('refuses a directory that is neither a known name nor an https:// URL', () => {
    expect(problemsOf(['--acme', 'http://acme.example.net/directory', '--acme-domains', 'registry.example.com'])).toEqual([
      '--acme: "http://acme.example.net/directory" is neither letsencrypt, letsencrypt-staging nor an https:// directory URL (e.g. https://ca.example.com/acme/directory)',
    ]);
    expect(problemsOf(['--acme', 'letsencrypt-prod', '--acme-domains', 'registry.example.com'])).toEqual([expect.stringMatching(/^--acme: "letsencrypt-prod" is neither letsencrypt/)]);
    expect(problemsOf([], { GATEWAY_ACME: 'ftp://acme.example.net/', GATEWAY_ACME_DOMAINS: 'registry.example.com' })).toEqual([expect.stringMatching(/^GATEWAY_ACME: "ftp:\/\/acme.example.net\/" is neither/)]);
  });

  it('refuses --acme with --tls-cert or --tls-key', () => {
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com', '--tls-cert', '/etc/gw/server.crt'])).toEqual([
      '--acme and --tls-cert cannot be used together: with --acme the gateway gets and renews its certificate itself; remove one of them',
    ]);
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com'], { GATEWAY_TLS_KEY: '/etc/gw/server.key' })).toEqual([
      '--acme and GATEWAY_TLS_KEY cannot be used together: with --acme the gateway gets and renews its certificate itself; remove one of them',
    ]);
  });

  it('asks for the names when there is neither --acme-domains nor --public-url', () => {
    expect(problemsOf(['--acme', DIRECTORY])).toEqual([
      '--acme: which names is the certificate for? set --public-url (e.g. https://registry.example.com) or --acme-domains/GATEWAY_ACME_DOMAINS',
    ]);
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', ' , '])).toEqual([expect.stringMatching(/^--acme: which names is the certificate for\?/)]);
  });

  it('refuses IP addresses and single-label names, from --acme-domains or --public-url', () => {
    const notDns = (name: string, option: string) => `${option}: "${name}" is not a DNS name an ACME CA issues for (no IP addresses, no single-label names such as localhost)`;
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com,192.0.2.10,localhost'])).toEqual([notDns('192.0.2.10', '--acme-domains'), notDns('localhost', '--acme-domains')]);
    expect(problemsOf(['--acme', DIRECTORY, '--public-url', 'https://192.0.2.10'])).toEqual([notDns('192.0.2.10', '--public-url')]);
    expect(problemsOf(['--acme', DIRECTORY, '--public-url', 'https://[2001:db8::1]'])).toEqual([notDns('[2001:db8::1]', '--public-url')]);
    expect(problemsOf(['--acme', DIRECTORY, '--public-url', 'https://registry:8443'])).toEqual([notDns('registry', '--public-url')]);
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', '10.1.2'])).toEqual([notDns('10.1.2', '--acme-domains')]);
  });

  it('refuses a contact that is not an email address', () => {
    for (const email of ['ops', 'ops@localhost', 'mailto:ops@example.com, x@y.z', 'ops @example.com']) {
      expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com', '--acme-email', email])).toEqual([`--acme-email: "${email}" is not an email address`]);
    }
  });

  it('refuses half an external account binding, and a key that is not base64url', () => {
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com', '--acme-eab-kid', 'kid-1'])).toEqual([
      '--acme-eab-kid needs --acme-eab-hmac-key/GATEWAY_ACME_EAB_HMAC_KEY too: external account binding takes both',
    ]);
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com'], { GATEWAY_ACME_EAB_HMAC_KEY: 'c2VjcmV0' })).toEqual([
      'GATEWAY_ACME_EAB_HMAC_KEY needs --acme-eab-kid/GATEWAY_ACME_EAB_KID too: external account binding takes both',
    ]);
    expect(problemsOf(['--acme', DIRECTORY, '--acme-domains', 'registry.example.com', '--acme-eab-kid', 'kid-1', '--acme-eab-hmac-key', 'not base64!'])).toEqual([
      '--acme-eab-hmac-key: not a base64url key as the CA gives it',
    ]);
  });

  it('refuses ACME options given without --acme, naming each', () => {
    expect(problemsOf(['--acme-domains', 'registry.example.com'])).toEqual(['--acme-domains only apply with --acme; remove it, or set --acme']);
    expect(problemsOf(['--acme-email', 'ops@example.com', '--acme-http-listen', '0.0.0.0:80'], { GATEWAY_ACME_CA_CERT: '/etc/ca.pem' })).toEqual([
      '--acme-email, GATEWAY_ACME_CA_CERT, --acme-http-listen only apply with --acme; remove them, or set --acme',
    ]);
  });

  it('reports every problem at once', () => {
    expect(problemsOf(['--acme', 'http://acme.example.net/', '--acme-domains', 'localhost', '--acme-email', 'ops', '--acme-eab-kid', 'k', '--acme-http-listen', 'nowhere'])).toEqual([
      expect.stringMatching(/^--acme: "http:\/\/acme.example.net\/" is neither/),
      expect.stringMatching(/^--acme-domains: "localhost" is not a DNS name/),
      '--acme-email: "ops" is not an email address',
      '--acme-eab-kid needs --acme-eab-hmac-key/GATEWAY_ACME_EAB_HMAC_KEY too: external account binding takes both',
      expect.stringMatching(/^--acme-http-listen: /),
    ]);
  });
});
