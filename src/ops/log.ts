/**
 * Structured JSON logs (pino) on stderr, so stdout stays free for command
 * output. Components log through child loggers; logs carry ids, counts,
 * bytes and durations, never event payloads or credentials. Errors go under
 * `err`, which pino's serializer writes with their type, message, stack and
 * cause chain.
 */
import { pino, type Logger } from 'pino';

export function createLogger(level: string, name = 'event-lens'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };
