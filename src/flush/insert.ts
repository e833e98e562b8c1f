/**
 * One ClickHouse insert of a batch, and what happens when it fails: the
 * insert carries its dedup token; a retryable failure (anything that is not
 * about the data, see classifyClickHouseError) is retried with jittered
 * backoff up to maxAttempts; when ClickHouse rejects the data itself, the
 * batch is bisected (deterministically, so the sub-batches keep stable tokens
 * `<id>/a`, `<id>/a/b`, …) until the rejected rows are isolated as dead
 * letters. A batch of SYSTEMIC_MIN_ROWS or more whose every row fails alone is
 * a systemic failure: retried, not dead-lettered.
 */
import { Readable } from 'node:stream';
import type { ClickHouse } from '../clickhouse/client.js';
import { EVENT_ROW_COLUMNS, isPositionalRow, parseEventRow, positionalRow, withEngagedColumn } from '../event/columns.js';
import { backoffMs, classifyClickHouseError, ClickHouseWriteError } from '../errors.js';
import type { Faults } from '../ops/faults.js';
import type { Metrics } from '../ops/metrics.js';

/**
 * A batch of at least this many rows whose every row fails alone is a systemic
 * failure (a schema change, a setting), not that many bad rows: it is retried,
 * not dead-lettered.
 */
export const SYSTEMIC_MIN_ROWS = 8;

/** A row ClickHouse rejected, as stored in the dead-letter list. */
export interface DeadLetter {
  error: string;
  row: unknown;
  /** The row exactly as it was sent to ClickHouse (what a redrive puts back; entries of 0.1 lack it). */
  text?: string;
}

export interface InserterOptions {
  /** Attempts per batch before the error is raised (retryable errors only). @defaultValue 8 */
  maxAttempts?: number | undefined;
  metrics?: Metrics | undefined;
  /** Called once ClickHouse has confirmed an insert. */
  onInserted?: ((table: string, rows: readonly string[]) => void) | undefined;
  faults?: Faults | undefined;
}

/** Attempts of one insert before its error is raised, when the options name none. */
const DEFAULT_MAX_ATTEMPTS = 8;

/** How much of a rejected row's error message the systemic-failure error quotes. */
const MESSAGE_EXCERPT_CHARS = 300;

export class Inserter {
  constructor(
    private readonly ch: ClickHouse,
    private readonly options: InserterOptions,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {}

  /**
   * Inserts one batch of rows with its dedup token, as one insert. Positional
   * events rows (JSON arrays, see event/columns.ts) go as JSONCompactEachRow
   * with the column list; a batch of objects only (sessions rows, or events
   * rows held by a release before 0.5) as JSONEachRow. A batch that holds
   * both (rows held across an upgrade) has its objects rewritten as
   * positional rows, so that it stays one insert under one token; positional
   * rows of release 0.1.0 get their NULL engagedMs.
   */
  async insert(id: string, rows: readonly string[], table: string): Promise<void> {
    this.options.faults?.beforeInsert();
    let body = this.options.faults?.outgoing(rows) ?? rows;
    const positional = body.some(isPositionalRow);
    if (positional) body = body.map((r) => (isPositionalRow(r) ? withEngagedColumn(r) : asPositional(r)));
    const format = positional ? `(${EVENT_ROW_COLUMNS.join(', ')}) FORMAT JSONCompactEachRow` : 'FORMAT JSONEachRow';
    try {
      const result = await this.ch.client.exec({
        query: `INSERT INTO ${table} ${format}`,
        values: Readable.from([Buffer.from(body.join('\n'), 'utf8')], { objectMode: false }),
        clickhouse_settings: { insert_deduplication_token: id },
      });
      result.stream.resume();
    } catch (err) {
      throw classifyClickHouseError(err);
    }
  }

  /** Inserts with backoff on retryable errors; raises the last error after maxAttempts. */
  async insertWithRetry(table: string, token: string, rows: readonly string[]): Promise<void> {
    const metrics = this.options.metrics;
    for (let attempt = 0; ; attempt += 1) {
      const started = performance.now();
      try {
        await this.insert(token, rows, table);
        metrics?.insertSeconds.observe((performance.now() - started) / 1000);
        this.options.onInserted?.(table, rows);
        return;
      } catch (err) {
        const retryable = err instanceof ClickHouseWriteError && err.retryable;
        metrics?.insertErrors.inc({ retryable: String(retryable) });
        if (!retryable || attempt + 1 >= (this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS)) throw err;
        await this.sleep(backoffMs(attempt));
      }
    }
  }

  /**
   * Inserts the rows; rows ClickHouse rejects as bad data are isolated by
   * bisection and returned as dead letters. When every row of a batch of
   * SYSTEMIC_MIN_ROWS or more fails alone, the cause is not the rows: a
   * retryable error is thrown and nothing is dead-lettered.
   */
  async insertOrIsolate(table: string, token: string, rows: readonly string[]): Promise<DeadLetter[]> {
    const dead = await this.bisect(table, token, rows);
    if (rows.length >= SYSTEMIC_MIN_ROWS && dead.length === rows.length) {
      throw new ClickHouseWriteError(
        `insert failed: every one of the ${rows.length} rows was rejected on its own (${dead[0]?.error.slice(0, MESSAGE_EXCERPT_CHARS)}); treated as systemic and retried, not dead-lettered`,
        true,
      );
    }
    return dead;
  }

  private async bisect(table: string, token: string, rows: readonly string[]): Promise<DeadLetter[]> {
    try {
      await this.insertWithRetry(table, token, rows);
      return [];
    } catch (err) {
      if (!(err instanceof ClickHouseWriteError) || err.retryable) throw err;
      if (rows.length === 1) return [{ error: err.message, row: parseRow(rows[0] as string), text: rows[0] as string }];
      const half = Math.ceil(rows.length / 2);
      const left = await this.bisect(table, `${token}/a`, rows.slice(0, half));
      const right = await this.bisect(table, `${token}/b`, rows.slice(half));
      return [...left, ...right];
    }
  }
}

/** An events row of the previous layout as a positional row; text that is no JSON object is sent as it is (ClickHouse rejects it, bisection isolates it). */
function asPositional(text: string): string {
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? positionalRow(value as Record<string, unknown>) : text;
  } catch {
    return text;
  }
}

function parseRow(text: string): unknown {
  try {
    return parseEventRow(text);
  } catch {
    return text;
  }
}
