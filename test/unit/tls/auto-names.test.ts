import { describe, expect, it } from 'vitest';
import { autoCertificateNames } from '../../../src/tls/auto.js';

describe('autoCertificateNames', () => {
  it('covers the public host, this machine, loopback and the extra names, once each', () => {
    expect(autoCertificateNames(new URL('https://Registry.Example.com:8443'), ['10.0.0.5', 'alias.example.com', 'localhost', ''], 'buildhost')).toEqual({
      hosts: ['registry.example.com', 'buildhost', 'localhost', 'alias.example.com'],
      ips: ['127.0.0.1', '::1', '10.0.0.5'],
    });
  });

  it('leaves out a machine name that cannot be a DNS name, but keeps a bad --tls-san so that it is reported', () => {
    expect(autoCertificateNames(null, ['bad_name'], 'my_box')).toEqual({ hosts: ['localhost', 'bad_name'], ips: ['127.0.0.1', '::1'] });
  });
});
