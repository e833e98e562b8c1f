/**
 * Structured JSON logs (pino) on stderr, so stdout stays free for command
 * output. Components log through child loggers; logs carry ids, counts,
 * bytes and durations, never event payloads or credentials. Errors go under
 * `err`, with their type, message, stack and cause chain, less what client
 * libraries attach to them with a command's arguments (ioredis puts the
 * failed command, payloads and all, on its errors).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

/** Fields of a client's error that hold a command's arguments: never logged. */
const ARGUMENT_FIELDS = ['command', 'args', 'argv', 'commandArgs', 'previousErrors'];

/** pino's error serializer, without the argument fields at any depth (nested errors, aggregate errors). */
function withoutArguments(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null || depth > 8) return value;
  if (Array.isArray(value)) return value.map((v) => withoutArguments(v, depth + 1));
  const out = value as Record<string, unknown>;
  for (const key of Object.keys(out)) {
    if (ARGUMENT_FIELDS.includes(key)) delete out[key];
    else out[key] = withoutArguments(out[key], depth + 1);
  }
  return out;
}

export const serializeError = (err: unknown): unknown => withoutArguments(pino.stdSerializers.err(err as Error));

export function createLogger(level: string, name = 'event-lens', destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ name, level, base: { pid: process.pid }, serializers: { err: serializeError } }, destination);
}

export type { Logger };
