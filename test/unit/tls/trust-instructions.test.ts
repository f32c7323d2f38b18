// What the trust instructions name: the address clients use, and a way for every client.
import { describe, expect, it } from 'vitest';
import { registryAddress, trustInstructions, trustedNames } from '../../../src/tls/cert-files.js';

describe('trustedNames', () => {
  it('is the public host alone when there is one, not the machine (a container id) or loopback', () => {
    expect(trustedNames(new URL('https://Registry.Test:5443'), ['3f2a9c0d1e7b', 'localhost', '127.0.0.1'])).toEqual(['registry.test']);
    expect(trustedNames(new URL('https://[fd00::5]'), ['localhost'])).toEqual(['fd00::5']);
  });

  it('is every name of the certificate without one', () => {
    expect(trustedNames(null, ['buildhost', 'localhost', '127.0.0.1'])).toEqual(['buildhost', 'localhost', '127.0.0.1']);
  });
});

describe('registryAddress', () => {
  it('leaves out 443 and bracket an IPv6 address', () => {
    expect(registryAddress('registry.test', 443)).toBe('registry.test');
    expect(registryAddress('registry.test', 5443)).toBe('registry.test:5443');
    expect(registryAddress('fd00::5', 443)).toBe('[fd00::5]');
    expect(registryAddress('fd00::5', 8443)).toBe('[fd00::5]:8443');
  });
});

describe('trustInstructions', () => {
  const text = trustInstructions('certs/ca.crt', ['registry.test'], 5443);

  it('gives Docker, podman, containerd, Docker Desktop on macOS and Windows, and the system store', () => {
    expect(text).toContain('sudo install -D -m 644 certs/ca.crt /etc/docker/certs.d/registry.test:5443/ca.crt');
    expect(text).toContain('/etc/containers/certs.d/registry.test:5443/ca.crt');
    expect(text).toContain('/etc/containerd/certs.d/registry.test:5443/ca.crt');
    expect(text).toContain('sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ca.crt');
    expect(text).toContain('Import-Certificate -FilePath ca.crt -CertStoreLocation Cert:\\LocalMachine\\Root');
    expect(text.match(/restart Docker Desktop/g)).toHaveLength(2);
    expect(text).toContain('update-ca-certificates');
  });

  it('never points skopeo at the certs folder, which holds ca.key too', () => {
    expect(text).not.toMatch(/--cert-dir\s+\S*certs\b/);
  });
});
