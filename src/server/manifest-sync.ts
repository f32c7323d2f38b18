// With --workers every process keeps its own manifest copies, so a push through one process must
// drop the copies in all: a worker tells the primary, which drops its own and tells every other.

import cluster, { type Worker } from 'node:cluster';
import type { ManifestCache } from '../proxy/manifest-cache.js';

const CHANGED = 'registry-gateway:manifests-changed';

interface ChangeMessage {
  readonly type: typeof CHANGED;
  readonly repository: string;
}

function isChange(message: unknown): message is ChangeMessage {
  const m = message as Partial<ChangeMessage> | null;
  return typeof m === 'object' && m !== null && m.type === CHANGED && typeof m.repository === 'string';
}

/** Tells the gateway's other processes that `repository` changed. */
export function announceManifestChange(repository: string, except?: Worker): void {
  const message: ChangeMessage = { type: CHANGED, repository };
  if (cluster.isWorker) {
    process.send?.(message);
    return;
  }
  for (const worker of Object.values(cluster.workers ?? {})) {
    if (worker && worker !== except && worker.isConnected()) worker.send(message);
  }
}

/** Drops the copies of repositories other processes report changed; returns how to stop listening. */
export function receiveManifestChanges(cache: ManifestCache): () => void {
  if (cluster.isWorker) {
    const onMessage = (message: unknown) => {
      if (isChange(message)) cache.drop(message.repository);
    };
    process.on('message', onMessage);
    return () => process.off('message', onMessage);
  }
  const onMessage = (worker: Worker, message: unknown) => {
    if (!isChange(message)) return;
    cache.drop(message.repository);
    announceManifestChange(message.repository, worker);
  };
  cluster.on('message', onMessage);
  return () => cluster.off('message', onMessage);
}
