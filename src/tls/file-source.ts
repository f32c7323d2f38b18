// The certificate and key from files (--tls-cert, --tls-key): read and checked before listening,
// so a bad pair is a clear start-up error rather than a handshake failure every client has to
// puzzle over; then followed, so a renewed pair (a file change, or SIGHUP) is used for new
// connections while open ones carry on with the one they negotiated. A broken or mismatched pair
// keeps the old one in force.

import type { Logger } from 'pino';
import type { FileOption } from '../config/types.js';
import { watchFiles, type FileWatch } from '../config/watch.js';
import { loadTlsFiles, type TlsFiles } from './load.js';
import { changeListeners, type CertificatePair, type CertificateSource } from './source.js';

// Renewal tools write the certificate and the key one after the other: let both land.
const SETTLE_MS = 300;

export interface OpenedCertificates {
  /** Null when the files are unusable; the problems say why. */
  readonly source: CertificateSource | null;
  readonly problems: readonly string[];
}

/** Reads and checks both files (every problem, each naming its option), and serves them. */
export async function openCertificateFiles(files: { readonly cert: FileOption; readonly key: FileOption }, now = new Date()): Promise<OpenedCertificates> {
  const { files: pair, problems } = await loadTlsFiles({ certFile: files.cert.file, certSource: files.cert.source, keyFile: files.key.file, keySource: files.key.source }, now);
  return { source: pair === null ? null : certificateFileSource(files.cert.file, files.key.file, pair), problems };
}

/** A source serving `initial`, read from these files, and whatever they hold once renewed. */
export function certificateFileSource(certFile: string, keyFile: string, initial: CertificatePair): CertificateSource {
  let current = initial;
  let log: Logger | null = null;
  let watch: FileWatch | null = null;
  const listeners = changeListeners();

  const read = () => loadTlsFiles({ certFile, certSource: '--tls-cert', keyFile, keySource: '--tls-key' });
  const take = ({ files: pair, problems }: { files: TlsFiles | null; problems: string[] }): boolean => {
    if (pair === null) {
      log?.error({ cert: certFile, key: keyFile, problems }, 'certificate not reloaded: keeping the previous one');
      return false;
    }
    current = pair;
    listeners.emit(pair);
    log?.info({ cert: certFile }, 'certificate reloaded for new connections');
    return true;
  };

  return {
    current: () => current,
    onChange: listeners.add,
    start(logger) {
      if (watch !== null) return;
      log = logger;
      watch = watchFiles({ files: [certFile, keyFile], read, take, debounceMs: SETTLE_MS });
    },
    reload: () => (watch === null ? read().then(take) : watch.reload()),
    close() {
      watch?.close();
      watch = null;
    },
  };
}
