// Bounding the memory that relayed chunks hold after they are sent.
//
// Node reads every socket into a fresh buffer (up to 64 KiB) and V8 frees those only when a
// collection finds them dead. Between collections a process streaming hundreds of MB/s piles up
// tens of MiB of dead chunks, per process: measured, 8 parallel layer pulls grew one gateway
// process by ~40 MiB, nearly all of it chunks already written. A young-generation collection
// after every few MiB relayed frees them at once; with almost nothing live in the young
// generation it costs a fraction of a millisecond, far below the cost of moving those bytes.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' }) => void;

let collect: Collect | null | undefined;

function minorCollector(): Collect | null {
  if (collect !== undefined) return collect;
  const exposed = (globalThis as { gc?: Collect }).gc;
  if (typeof exposed === 'function') return (collect = exposed);
  try {
    // The flag only adds `gc` to contexts created after it is set: take it from a fresh one.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    collect = typeof gc === 'function' ? (gc as Collect) : null;
  } catch {
    collect = null;
  }
  return collect;
}

export interface Reclaimer {
  /** Notes `bytes` more relayed; collects once the total since the last collection passes the threshold. */
  relayed(bytes: number): void;
}

/** One per process: every relay in the process shares the threshold. */
export function createReclaimer(everyBytes = 4 * 1024 * 1024): Reclaimer {
  const gc = everyBytes > 0 ? minorCollector() : null;
  if (gc === null) return { relayed: () => undefined };
  let pending = 0;
  return {
    relayed(bytes) {
      pending += bytes;
      if (pending < everyBytes) return;
      pending = 0;
      gc({ type: 'minor' });
    },
  };
}
