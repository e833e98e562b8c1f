/**
 * Flag parsers for commander: each validates like `loadConfig` does and fails
 * with commander's own message, which names the flag, the value and the rule
 * (`option '--concurrency <n>' argument 'abc' is invalid. expected a whole number from 1 to 1000`).
 */
import { InvalidArgumentError } from 'commander';

/** A whole number in [min, max]; `_` separators allowed (`100_000`). */
export const int =
  (min = 0, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = Number(value.replace(/_/g, ''));
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return n;
  };

/** A number from 0 to 1. */
export const fraction = (value: string): number => {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
};

/** One of a fixed set of words. */
export const choice =
  <T extends string>(...allowed: readonly T[]) =>
  (value: string): T => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${allowed.join(', ')}`);
    return value as T;
  };

/** An instant: ISO-8601 with a time zone, a day (YYYY-MM-DD, UTC midnight), or epoch ms; returns epoch ms. */
export const instant = (value: string): number => {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (!Number.isSafeInteger(ms) || !/^(\d+|\d{4}-\d{2}-\d{2}(T.*(Z|[+-]\d{2}:?\d{2}))?)$/.test(value)) {
    throw new InvalidArgumentError('expected an ISO-8601 time with a time zone (2026-10-01T00:00:00Z), a day (2026-10-01) or epoch milliseconds');
  }
  return ms;
};
