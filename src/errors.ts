/**
 * One error hierarchy for Event Lens. Every error carries a stable `code` and,
 * when it wraps another failure, the original as `cause`. Messages name what was
 * wrong, the offending value and what was expected.
 */
export class EventLensError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Invalid configuration; lists every problem found, one per line. */
export class ConfigError extends EventLensError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** One issue of an invalid event: the field (dotted path) and the rule it broke. */
export interface ValidationIssue {
  readonly field: string;
  readonly rule: string;
}

/** An incoming event that breaks the event contract (DESIGN §1). Never retryable. */
export class ValidationError extends EventLensError {
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[]) {
    super('EVENT_INVALID', issues.map((i) => `${i.field}: ${i.rule}`).join('; '));
    this.issues = issues;
  }
}

/** A Lua script answered with a negative code or failed to run. */
export class ScriptError extends EventLensError {
  readonly script: string;

  constructor(script: string, message: string, options?: { cause?: unknown }) {
    super('SCRIPT_FAILED', `script ${script}: ${message}`, options);
    this.script = script;
  }
}

/** An insert into ClickHouse failed; `retryable` says whether trying again can help. */
export class ClickHouseWriteError extends EventLensError {
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super('CLICKHOUSE_WRITE_FAILED', message, options);
    this.retryable = retryable;
  }
}

/** A migration file or statement failed; names the file and the statement. */
export class MigrationError extends EventLensError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MIGRATION_FAILED', message, options);
  }
}

/**
 * ClickHouse error types that name the data: the rows of the insert are wrong,
 * and the same rows will fail again. Only these send rows to the dead-letter
 * list (DESIGN §3: failures are classified, never guessed). Every other
 * ClickHouse error (authentication, a missing table or column, a read-only or
 * full disk, overload, timeouts, an unknown type) is about the server and is
 * retried with backoff.
 */
export const CLICKHOUSE_DATA_ERRORS: ReadonlySet<string> = new Set([
  'CANNOT_PARSE_TEXT',
  'CANNOT_PARSE_ESCAPE_SEQUENCE',
  'CANNOT_PARSE_QUOTED_STRING',
  'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
  'CANNOT_PARSE_DATE',
  'CANNOT_PARSE_DATETIME',
  'CANNOT_PARSE_NUMBER',
  'CANNOT_PARSE_UUID',
  'CANNOT_PARSE_IPV4',
  'CANNOT_PARSE_IPV6',
  'CANNOT_PARSE_BOOL',
  'CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING',
  'CANNOT_READ_ALL_DATA',
  'CANNOT_READ_ARRAY_FROM_TEXT',
  'CANNOT_READ_MAP_FROM_TEXT',
  'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN',
  'CANNOT_CONVERT_TYPE',
  'TYPE_MISMATCH',
  'INCORRECT_DATA',
  'INCORRECT_NUMBER_OF_COLUMNS',
  'TOO_LARGE_STRING_SIZE',
  'TOO_LARGE_ARRAY_SIZE',
  'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE',
  'ARGUMENT_OUT_OF_BOUND',
  'ATTEMPT_TO_READ_AFTER_EOF',
  'UNKNOWN_FIELD', // a JSONEachRow key that is no column (with input_format_skip_unknown_fields off)
  'VIOLATED_CONSTRAINT', // a row breaking a table CONSTRAINT: the same row fails again until the constraint changes
]);

const RETRYABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

/**
 * What a failure is, for every caller that decides whether to try again (the
 * one table: the worker's held jobs, the flusher's inserts, the producer):
 *
 *   transient      passes by itself: the network, a Redis restart, failover or
 *                  load (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN,
 *                  READONLY), a timeout, a ClickHouse error that is not about
 *                  the data (authentication, a missing table, a full disk…)
 *   out-of-memory  Redis at maxmemory under noeviction: passes once memory is
 *                  freed, and taking more work meanwhile makes it worse
 *   data           the event or the rows are wrong and will fail again
 *                  (ValidationError, CLICKHOUSE_DATA_ERRORS)
 *   permanent      everything else: configuration, migrations, bugs
 *
 * A wrapping EventLensError is what its cause is.
 */
export type FailureKind = 'transient' | 'out-of-memory' | 'data' | 'permanent';

export function failureKind(err: unknown): FailureKind {
  if (err instanceof ValidationError) return 'data';
  if (err instanceof ConfigError || err instanceof MigrationError) return 'permanent';
  if (err instanceof ClickHouseWriteError) return err.retryable ? 'transient' : 'data';
  if (!(err instanceof Error)) return 'permanent';
  const type = (err as { type?: unknown }).type;
  if (typeof type === 'string') return CLICKHOUSE_DATA_ERRORS.has(type) ? 'data' : 'transient';
  const msg = err.message;
  if (/\bOOM command not allowed\b/.test(msg)) return 'out-of-memory';
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && RETRYABLE_NODE_CODES.has(code)) return 'transient';
  if (/^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/.test(msg)) return 'transient';
  if (/Connection is closed|aborted due to connection close|socket hang up|timed? ?out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT/i.test(msg)) return 'transient';
  if (err instanceof EventLensError && err.cause !== undefined) return failureKind(err.cause);
  return 'permanent';
}

/** Redis refused a write because it is at maxmemory under noeviction. */
export const isOutOfMemory = (err: unknown): boolean => failureKind(err) === 'out-of-memory';

/** Classifies a failed ClickHouse insert: retryable unless its error names the data. */
export function classifyClickHouseError(err: unknown): ClickHouseWriteError {
  const type = (err as { type?: unknown } | null)?.type;
  const message = err instanceof Error ? err.message : String(err);
  return new ClickHouseWriteError(`insert failed: ${message.slice(0, 500)}${typeof type === 'string' ? ` (${type})` : ''}`, failureKind(err) !== 'data', { cause: err });
}

/**
 * Full-jitter exponential backoff: a random delay in [0, min(maxMs, baseMs·2^attempt)].
 * Jitter keeps replicas that failed together from retrying together.
 */
export function backoffMs(attempt: number, baseMs = 100, maxMs = 30_000, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
