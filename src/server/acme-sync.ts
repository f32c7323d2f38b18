// With --workers and --acme, one process talks to the CA (the primary) but a validator's
// TLS-ALPN-01 connection may reach any process sharing the port: the primary passes the open
// order's challenge certificates to every worker, and each new worker asks for them when it starts.

import cluster, { type Worker } from 'node:cluster';
import type { AcmeSource, ChallengeSet } from '../tls/acme.js';

const CHALLENGES = 'registry-gateway:acme-challenges';
const ASK = 'registry-gateway:acme-ask';

interface ChallengesMessage {
  readonly type: typeof CHALLENGES;
  readonly challenges: ChallengeSet;
}

function isType(message: unknown, type: string): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/** Starts passing challenges between processes; returns a function that stops it. */
export function syncAcmeChallenges(source: AcmeSource): () => void {
  return cluster.isWorker ? workerSide(source) : primarySide(source);
}

function primarySide(source: AcmeSource): () => void {
  let latest: ChallengeSet = [];
  const send = (worker: Worker) => {
    if (!worker.isConnected()) return;
    try {
      worker.send({ type: CHALLENGES, challenges: latest } satisfies ChallengesMessage);
    } catch {
      // exiting right now: it takes no connections any more
    }
  };
  const stopSharing = source.shareChallenges((challenges) => {
    latest = challenges;
    for (const worker of Object.values(cluster.workers ?? {})) if (worker) send(worker);
  });
  const onMessage = (worker: Worker, message: unknown) => {
    if (isType(message, ASK)) send(worker);
  };
  cluster.on('message', onMessage);
  return () => {
    stopSharing();
    cluster.off('message', onMessage);
  };
}

function workerSide(source: AcmeSource): () => void {
  const onMessage = (message: unknown) => {
    if (isType(message, CHALLENGES)) source.takeChallenges((message as ChallengesMessage).challenges);
  };
  process.on('message', onMessage);
  if (process.connected) process.send?.({ type: ASK });
  return () => void process.off('message', onMessage);
}
