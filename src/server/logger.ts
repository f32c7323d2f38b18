// JSON logs on stdout for machines; readable lines when a person is watching a terminal.

import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type Pretty from 'pino-pretty';
import type { LogLevel } from '../config/types.js';

export type { Logger } from 'pino';

// pino-pretty and its dependencies cost several MiB per process: loaded only for a terminal.
function prettyStream(): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof Pretty;
  return pretty({ colorize: true, translateTime: 'SYS:standard' });
}

/** Log lines gathered before one write(2): an access line is ~300 bytes, so ~15 lines a write. */
const LOG_BUFFER_BYTES = 4096;
/** The longest a line waits in that buffer. */
const LOG_FLUSH_MS = 100;

let stdoutLines: DestinationStream | undefined;

/**
 * Stdout for machines, shared by every logger of the process. A write(2) per line was ~12% of the
 * CPU of a request the registry answers (bench/profile.md); gathered, a line costs a copy. Writes
 * stay synchronous (no write in flight in another thread to lose), at most LOG_FLUSH_MS late; what
 * is left is written at exit, which `serve` reaches on SIGTERM and SIGINT too. Only a SIGKILL loses
 * the last LOG_FLUSH_MS of lines.
 */
function bufferedStdout(): DestinationStream {
  if (stdoutLines !== undefined) return stdoutLines;
  const out = pino.destination({ dest: 1, sync: true, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS });
  process.once('exit', () => out.flushSync());
  stdoutLines = out;
  return out;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const stream = destination ?? (process.stdout.isTTY ? prettyStream() : bufferedStdout());
  return pino(
    {
      level,
      base: { service: 'registry-gateway', pid: process.pid },
      // Belt and braces: nothing logs request headers, but should one ever be passed in,
      // credentials must not reach the log.
      redact: { paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'password'], censor: '[redacted]' },
    },
    stream,
  );
}
