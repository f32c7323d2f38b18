// Configuration is data: parseConfig checks flags and environment and reads no file; the files it
// names, with how a problem would name each, are for start-up to read.
import { describe, expect, it } from 'vitest';
import { clientPort, parseConfig } from '../../../src/config/load.js';

describe('parseConfig', () => {
  it('reads no file: missing ones are no problem here', () => {
    const { config, files, problems } = parseConfig(['--tls-cert', '/nowhere/a.crt', '--htpasswd', '/nowhere/htpasswd', '--access', '/nowhere/access.yml'], { GATEWAY_TLS_KEY: '/nowhere/a.key' });
    expect(problems).toEqual([]);
    expect(Object.isFrozen(config)).toBe(true);
    expect(config?.tls).toMatchObject({ certFile: '/nowhere/a.crt', keyFile: '/nowhere/a.key', clientCaFile: null, autoCertificate: null });
    expect(config?.htpasswdFile).toBe('/nowhere/htpasswd');
    expect(config?.access).toEqual({ file: '/nowhere/access.yml' });
    expect(files).toMatchObject({
      cert: { file: '/nowhere/a.crt', source: '--tls-cert' },
      key: { file: '/nowhere/a.key', source: 'GATEWAY_TLS_KEY' },
      clientCa: null,
      htpasswd: { file: '/nowhere/htpasswd', source: '--htpasswd' },
      access: { file: '/nowhere/access.yml', source: '--access' },
    });
  });

  it('asks for a certificate to be made only at the default paths, with a good --ca-domain', () => {
    const auto = parseConfig(['--listen', '127.0.0.1:9443', '--tls-san', 'a.example,192.0.2.1', '--ca-domain', 'corp.example'], {});
    expect(auto.config?.tls.autoCertificate).toEqual({ publicUrl: null, extraSans: ['a.example', '192.0.2.1'], port: 9443, caDomains: ['corp.example'] });
    expect(auto.files.clientAddress).toEqual({ publicUrl: null, publicUrlSource: '--public-url/GATEWAY_PUBLIC_URL', extraSans: ['a.example', '192.0.2.1'], extraSansSource: '--tls-san', port: 9443 });
    expect(auto.files.cert).toEqual({ file: 'certs/server.crt', source: '--tls-cert/GATEWAY_TLS_CERT' });
    expect(parseConfig(['--public-url', 'https://r.example'], {}).files.autoCertificate?.port).toBe(443);
    expect(parseConfig(['--tls-key', 'certs/server.key'], {}).files.autoCertificate).toBeNull();
    const bad = parseConfig(['--ca-domain', 'com'], {});
    expect(bad.config).toBeNull();
    expect(bad.files.autoCertificate).toBeNull();
    expect(bad.problems).toEqual([expect.stringMatching(/^--ca-domain: "com" is a single label/)]);
  });

  it('still names the files when another option is wrong', () => {
    const { config, files, problems } = parseConfig(['--listen', 'nowhere'], { GATEWAY_HTPASSWD: 'users' });
    expect(config).toBeNull();
    expect(problems).toEqual([expect.stringMatching(/^--listen: /)]);
    expect(files.htpasswd).toEqual({ file: 'users', source: 'GATEWAY_HTPASSWD' });
    expect(files.autoCertificate?.port).toBe(8443);
  });

  it('names in the trust paths the port clients use: --public-url\'s, else --published-port, else the listen port', () => {
    const port = (argv: string[], env: Record<string, string> = {}) => parseConfig(['--listen', '0.0.0.0:8443', ...argv], env).files.clientAddress.port;
    expect(port([])).toBe(8443);
    expect(port(['--published-port', '5000'])).toBe(5000);
    expect(port([], { GATEWAY_PUBLISHED_PORT: '443' })).toBe(443);
    expect(port([], { GATEWAY_PUBLISHED_PORT: '127.0.0.1:5443' })).toBe(5443);
    expect(port(['--public-url', 'https://registry.test:5443', '--published-port', '5000'])).toBe(5443);
    expect(port(['--published-port', '5000'], { GATEWAY_PUBLIC_URL: 'https://registry.test' })).toBe(443);
    expect(parseConfig(['--published-port', '5000'], {}).config?.publishedPort).toBe(5000);
    expect(parseConfig([], {}).config?.publishedPort).toBeNull();
  });

  it('refuses a --published-port that is not a port, naming where it came from', () => {
    for (const [argv, env, source] of [[['--published-port', '0'], {}, '--published-port'], [[], { GATEWAY_PUBLISHED_PORT: '70000' }, 'GATEWAY_PUBLISHED_PORT'], [['--published-port', 'https'], {}, '--published-port']] as const) {
      const { config, problems } = parseConfig([...argv], env);
      expect(config).toBeNull();
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^${source}: ".*" is not a port; give a whole number from 1 to 65535`))]);
    }
  });
});

describe('clientPort', () => {
  it('takes 443 for an https URL without a port', () => {
    expect(clientPort(new URL('https://registry.test'), 5000, 8443)).toBe(443);
    expect(clientPort(null, null, 8443)).toBe(8443);
    expect(clientPort(null, 443, 8443)).toBe(443);
  });
});

describe('parseConfig --auth', () => {
  it('is basic unless told otherwise: the gateway signs users in against --htpasswd', () => {
    const { config, files } = parseConfig([], {});
    expect(config?.auth).toBe('basic');
    expect(config?.htpasswdFile).toBe('./htpasswd');
    expect(files.htpasswd).toEqual({ file: './htpasswd', source: '--htpasswd/GATEWAY_HTPASSWD' });
    expect(config?.manifestCacheMs).toBe(1000);
  });

  it('upstream needs no htpasswd file, reads none, and keeps no manifest cache', () => {
    for (const [argv, env] of [[['--auth', 'upstream'], {}], [[], { GATEWAY_AUTH: 'upstream' }], [['--auth', ' Upstream '], {}]] as const) {
      const { config, files, problems } = parseConfig([...argv, '--htpasswd', '/nowhere/htpasswd'], env);
      expect(problems).toEqual([]);
      expect(config?.auth).toBe('upstream');
      expect(config?.htpasswdFile).toBeNull();
      expect(files.htpasswd).toBeNull();
      expect(config?.access).toBeNull();
      expect(config?.manifestCacheMs).toBe(0);
    }
    expect(parseConfig(['--auth', 'upstream', '--manifest-cache-ttl', '0'], {}).problems).toEqual([]);
  });

  it('refuses --access with upstream, naming both options and what to do', () => {
    const { config, files, problems } = parseConfig(['--auth', 'upstream', '--access', '/nowhere/access.yml'], {});
    expect(config).toBeNull();
    expect(files.access).toBeNull();
    expect(problems).toEqual([
      '--access cannot be used with --auth upstream: in that mode the registry decides who may pull, push and delete (the gateway verifies nobody); remove --access, or use --auth basic',
    ]);
    const fromEnv = parseConfig([], { GATEWAY_AUTH: 'upstream', GATEWAY_ACCESS: 'access.yml' });
    expect(fromEnv.problems).toEqual([expect.stringMatching(/^GATEWAY_ACCESS cannot be used with GATEWAY_AUTH upstream: .*remove GATEWAY_ACCESS, or use --auth basic$/)]);
  });

  it('refuses a manifest cache asked for with upstream', () => {
    const { config, problems } = parseConfig(['--auth', 'upstream'], { GATEWAY_MANIFEST_CACHE_TTL: '5' });
    expect(config).toBeNull();
    expect(problems).toEqual([expect.stringMatching(/^GATEWAY_MANIFEST_CACHE_TTL cannot be used with --auth upstream: the gateway would answer one user's manifests to anyone/)]);
  });

  it('refuses a mode it does not know, naming where it came from and the modes it has', () => {
    for (const [argv, env, source] of [[['--auth', 'tokens'], {}, '--auth'], [[], { GATEWAY_AUTH: 'none' }, 'GATEWAY_AUTH'], [['--auth', ''], {}, '--auth']] as const) {
      const { config, problems } = parseConfig([...argv], env);
      expect(config).toBeNull();
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^${source}: ".*" is not a sign-in mode; use basic \\(the gateway checks the users of --htpasswd\\), token \\(.*\\) or upstream \\(the registry behind it signs users in itself\\)$`))]);
    }
  });
});
