// Renewed certificates without a restart: new connections get the new pair, open ones carry on
// with the one they negotiated. A broken or mismatched pair keeps the old one in force.

import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Server } from 'node:https';
import type { Logger } from 'pino';
import { loadTlsFiles } from './load.js';
import { secureContextOptions } from './options.js';

const POLL_INTERVAL_MS = 1000;
// Renewal tools write the certificate and the key one after the other: let both land.
const SETTLE_MS = 300;

export interface CertificateWatch {
  /** Load the pair now; resolves to whether it was taken into use. */
  reload(): Promise<boolean>;
  close(): void;
}

export function watchCertificates(
  server: Server,
  files: { readonly certFile: string; readonly keyFile: string; readonly clientCa: string | null },
  log: Logger,
): CertificateWatch {
  let pending: NodeJS.Timeout | null = null;
  let reloading = Promise.resolve(true);

  const reloadOnce = async (): Promise<boolean> => {
    const { files: pair, problems } = await loadTlsFiles({
      certFile: files.certFile,
      certSource: '--tls-cert',
      keyFile: files.keyFile,
      keySource: '--tls-key',
    });
    if (pair === null) {
      log.error({ cert: files.certFile, key: files.keyFile, problems }, 'certificate not reloaded: keeping the previous one');
      return false;
    }
    server.setSecureContext(secureContextOptions({ ...pair, clientCa: files.clientCa }));
    log.info({ cert: files.certFile }, 'certificate reloaded for new connections');
    return true;
  };
  const reload = (): Promise<boolean> => (reloading = reloading.then(reloadOnce, reloadOnce));

  const onChange = (current: Stats, previous: Stats) => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => {
      pending = null;
      void reload();
    }, SETTLE_MS);
    pending.unref();
  };
  for (const file of [files.certFile, files.keyFile]) watchFile(file, { interval: POLL_INTERVAL_MS, persistent: false }, onChange);

  return {
    reload,
    close: () => {
      if (pending) clearTimeout(pending);
      for (const file of [files.certFile, files.keyFile]) unwatchFile(file, onChange);
    },
  };
}
