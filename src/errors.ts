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

/** Classifies a failed ClickHouse insert: retryable unless its error type names the data. */
export function classifyClickHouseError(err: unknown): ClickHouseWriteError {
  const type = (err as { type?: unknown } | null)?.type;
  // without a type the failure never reached the server's parser (network, timeout): retry
  const retryable = typeof type === 'string' ? !CLICKHOUSE_DATA_ERRORS.has(type) : !(err instanceof ValidationError);
  const message = err instanceof Error ? err.message : String(err);
  return new ClickHouseWriteError(`insert failed: ${message.slice(0, 500)}${typeof type === 'string' ? ` (${type})` : ''}`, retryable, { cause: err });
}

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
 * The one table of what is worth retrying: network failures, Redis loading /
 * OOM / failover answers, and ClickHouse errors that are not about the data
 * (classifyClickHouseError). Validation, config and migration errors are not.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ValidationError || err instanceof ConfigError || err instanceof MigrationError) {
    return false;
  }
  if (err instanceof ClickHouseWriteError) return err.retryable;
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && RETRYABLE_NODE_CODES.has(code)) return true;
  const msg = err.message;
  if (/^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|OOM)\b/.test(msg)) return true;
  if (/Connection is closed|socket hang up|timeout/i.test(msg)) return true;
  if (err instanceof EventLensError && err.cause !== undefined) return isRetryable(err.cause);
  return false;
}

/**
 * Full-jitter exponential backoff: a random delay in [0, min(maxMs, baseMs·2^attempt)].
 * Jitter keeps replicas that failed together from retrying together.
 */
export function backoffMs(attempt: number, baseMs = 100, maxMs = 30_000, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Redis refused a write because it is at maxmemory under noeviction ("OOM command not allowed ..."). */
export function isOutOfMemory(err: unknown): boolean {
  return err instanceof Error && /\bOOM command not allowed\b/.test(err.message);
}

/**
 * A Redis failure that passes by itself: the connection dropped or was refused
 * (a restart, a failover), or the server is still loading its data. Retrying
 * the same call is safe for the buffer's scripts (ids are deduplicated).
 */
export function isTransientRedisError(err: unknown): boolean {
  return (
    err instanceof Error &&
    /Connection is closed|aborted due to connection close|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|^LOADING\b|script \w+: LOADING|TRYAGAIN|CLUSTERDOWN|MASTERDOWN/.test(err.message)
  );
}
