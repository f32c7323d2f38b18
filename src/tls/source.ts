// Where the listener's key and certificate chain come from. The TLS listener takes what a source
// gives and follows its changes; it does not know whether that is files given by flags
// (file-source.ts), the gateway's own private CA (auto.ts), or a certificate authority reached
// over ACME.

import type { Logger } from 'pino';

export interface CertificatePair {
  /** PEM private key. */
  readonly key: string;
  /** PEM certificate, leaf first, then any chain. */
  readonly cert: string;
}

export interface CertificateSource {
  /** The pair in force. */
  current(): CertificatePair;
  /** Calls `listener` with every new pair taken into use; returns a function that stops the calls. */
  onChange(listener: (pair: CertificatePair) => void): () => void;
  /** Begins following renewals, logging what is taken and what refused (a refused pair leaves the old one in force). */
  start(log: Logger): void;
  /** Looks for a new pair now (what SIGHUP does); false when one was refused. */
  reload(): Promise<boolean>;
  /** Stops following renewals. */
  close(): void;
  /** Why clients will not trust the pair in force yet (an ACME order still open), or null; absent: always trusted. */
  waiting?(): string | null;
  /** Challenges the listeners answer for the source (ACME); absent: none. */
  readonly challenges?: CertificateChallenges;
}

/** What listeners answer while a CA validates the gateway's names (RFC 8737 TLS-ALPN-01, RFC 8555 HTTP-01). */
export interface CertificateChallenges {
  /** Whether validation is under way: only then do listeners look for challenges. */
  pending(): boolean;
  /** The TLS-ALPN-01 certificate for a name being validated, or null. */
  certificateFor(serverName: string): CertificatePair | null;
  /** The HTTP-01 key authorization for a token, or null. */
  keyAuthorization(token: string): string | null;
}

/** The listeners of a source: what an implementation calls when it takes a new pair. */
export function changeListeners(): { add(listener: (pair: CertificatePair) => void): () => void; emit(pair: CertificatePair): void } {
  const listeners = new Set<(pair: CertificatePair) => void>();
  return {
    add(listener) {
      const own = (pair: CertificatePair) => listener(pair);
      listeners.add(own);
      return () => void listeners.delete(own);
    },
    emit(pair) {
      for (const listener of listeners) listener(pair);
    },
  };
}
