// With --workers N, every process counts its own requests; a scrape of the primary asks each
// worker for its samples over the cluster channel and adds them up, so Prometheus sees one gateway.

import cluster, { type Worker } from 'node:cluster';
import type { Samples } from './registry.js';

const ASK = 'registry-gateway:metrics?';
const ANSWER = 'registry-gateway:metrics';
// A worker busy with a burst answers within milliseconds; one that cannot is left out of this scrape.
const ANSWER_TIMEOUT_MS = 1_000;

interface Answer {
  readonly type: typeof ANSWER;
  readonly id: number;
  readonly samples: Samples;
}

function isAnswer(message: unknown, id: number): message is Answer {
  const m = message as Partial<Answer> | null;
  return typeof m === 'object' && m !== null && m.type === ANSWER && m.id === id && Array.isArray(m.samples);
}

let nextId = 0;

function askWorker(worker: Worker): Promise<Samples | null> {
  const id = ++nextId;
  return new Promise((resolve) => {
    const done = (samples: Samples | null) => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve(samples);
    };
    const onMessage = (message: unknown) => {
      if (isAnswer(message, id)) done(message.samples);
    };
    const timer = setTimeout(() => done(null), ANSWER_TIMEOUT_MS);
    worker.on('message', onMessage);
    try {
      worker.send({ type: ASK, id });
    } catch {
      done(null); // exiting right now
    }
  });
}

/** In the primary: every live worker's samples (those that answered in time). */
export async function gatherWorkerSamples(): Promise<Samples[]> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const answers = await Promise.all(workers.map(askWorker));
  return answers.filter((a): a is Samples => a !== null);
}

/** In a worker: answers the primary's requests for samples. */
export function answerMetricsRequests(samples: () => Promise<Samples>): void {
  process.on('message', (message: unknown) => {
    const m = message as { type?: unknown; id?: unknown } | null;
    if (typeof m !== 'object' || m === null || m.type !== ASK || typeof m.id !== 'number') return;
    const id = m.id;
    samples().then(
      (s) => process.send?.({ type: ANSWER, id, samples: s }),
      () => undefined, // the primary's wait runs out; that scrape goes without this worker
    );
  });
}
