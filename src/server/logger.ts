// JSON logs on stdout for machines; readable lines when a person is watching a terminal.

import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from '../config/types.js';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const stream = destination ?? (process.stdout.isTTY ? pretty({ colorize: true, translateTime: 'SYS:standard' }) : pino.destination(1));
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
