// TLS settings of the listener: TLS 1.2 and 1.3 only, forward-secret AEAD suites only, HTTP/1.1.

import type { SecureContextOptions, TlsOptions } from 'node:tls';

// TLS 1.3 suites are always ECDHE/AEAD; this list constrains TLS 1.2 to the same.
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'].join(':');

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** CA of accepted client certificates; null lets any client connect (basic auth still applies). */
  readonly clientCa: string | null;
}

/** What can change while serving (certificate, key, client CA): the input of setSecureContext too. */
export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.clientCa === null ? {} : { ca: material.clientCa }),
    minVersion: 'TLSv1.2',
    ciphers: `${TLS13_CIPHERS}:${TLS12_CIPHERS}`,
    honorCipherOrder: true,
  };
}

export function secureServerOptions(material: TlsMaterial): TlsOptions & SecureContextOptions {
  const mutual = material.clientCa !== null;
  return {
    ...secureContextOptions(material),
    ALPNProtocols: ['http/1.1'],
    // As the registry's own http.tls.clientcas: no certificate from that CA, no connection.
    requestCert: mutual,
    rejectUnauthorized: mutual,
  };
}
