// Configuration is data: parseConfig checks flags and environment and reads no file; the files it
// names, with how a problem would name each, are for start-up to read.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

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
});
