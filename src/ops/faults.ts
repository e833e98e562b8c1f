/**
 * Fault hooks for the chaos suite, enabled only by the environment variable
 * EVENT_LENS_FAULTS (never set in production; the worker logs a warning when
 * it is). A comma-separated list of:
 *
 *   crash-after-insert:N     SIGKILL this process right after its Nth confirmed
 *                            insert, before the batch is acknowledged in Redis
 *   clickhouse-down-file:P   while file P exists, every insert fails as if
 *                            ClickHouse were unreachable (retryable)
 *   clickhouse-systemic-file:P  while file P exists, every insert fails with a
 *                            ClickHouse error of type AUTHENTICATION_FAILED, put
 *                            through the real classifier (not about the data)
 *   corrupt-ids-file:P       while file P exists, the rows whose ids it lists
 *                            (one per line) are sent with a createdAt ClickHouse
 *                            cannot parse; Redis keeps the rows as they were
 */
import { existsSync as exists, readFileSync } from 'node:fs';
import { classifyClickHouseError, ClickHouseWriteError } from '../errors.js';
import { EVENT_ROW_COLUMNS, isPositionalRow, rowId } from '../event/columns.js';

const CREATED_AT = EVENT_ROW_COLUMNS.indexOf('createdAt');

export interface Faults {
  /** Called before each insert; throws while ClickHouse is "down". */
  beforeInsert(): void;
  /** Called after each confirmed insert, before its acknowledgement. */
  afterInsert(): void;
  /** The rows as they are sent: the corrupt-ids hook breaks some of them in flight. */
  outgoing(rows: readonly string[]): readonly string[];
  readonly description: string;
}

export function faultsFromEnv(env: NodeJS.ProcessEnv): Faults | undefined {
  const spec = env.EVENT_LENS_FAULTS?.trim();
  if (!spec) return undefined;
  let crashAfter = Infinity;
  let downFile: string | undefined;
  let systemicFile: string | undefined;
  let corruptFile: string | undefined;
  for (const part of spec.split(',')) {
    const [name, value = ''] = part.split(/:(.*)/s, 2) as [string, string?];
    if (name === 'crash-after-insert' && /^\d+$/.test(value)) crashAfter = Number(value);
    else if (name === 'clickhouse-down-file' && value) downFile = value;
    else if (name === 'clickhouse-systemic-file' && value) systemicFile = value;
    else if (name === 'corrupt-ids-file' && value) corruptFile = value;
    else {
      throw new Error(
        `EVENT_LENS_FAULTS: ${JSON.stringify(part)} is not crash-after-insert:N, clickhouse-down-file:PATH, clickhouse-systemic-file:PATH or corrupt-ids-file:PATH`,
      );
    }
  }
  let inserts = 0;
  return {
    description: spec,
    beforeInsert() {
      if (downFile && exists(downFile)) {
        throw new ClickHouseWriteError('connect ECONNREFUSED (fault hook: clickhouse-down-file exists)', true);
      }
      if (systemicFile && exists(systemicFile)) {
        throw classifyClickHouseError(Object.assign(new Error('event_lens: Authentication failed (fault hook: clickhouse-systemic-file exists)'), { type: 'AUTHENTICATION_FAILED', code: '516' }));
      }
    },
    outgoing(rows) {
      if (!corruptFile || !exists(corruptFile)) return rows;
      const ids = new Set(readFileSync(corruptFile, 'utf8').split('\n').filter(Boolean));
      return rows.map((row) => {
        if (!ids.has(rowId(row))) return row;
        if (!isPositionalRow(row)) return row.replace(/"createdAt":"[^"]*"/, '"createdAt":"corrupted by the fault hook"');
        const values = JSON.parse(row) as unknown[];
        values[CREATED_AT] = 'corrupted by the fault hook';
        return JSON.stringify(values);
      });
    },
    afterInsert() {
      inserts += 1;
      if (inserts >= crashAfter) process.kill(process.pid, 'SIGKILL');
    },
  };
}
