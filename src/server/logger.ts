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

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const stream = destination ?? (process.stdout.isTTY ? prettyStream() : pino.destination(1));
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
