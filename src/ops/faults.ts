/**
 * Fault hooks for the chaos suite, enabled only by the environment variable
 * EVENT_LENS_FAULTS (never set in production; the worker logs a warning when
 * it is). A comma-separated list of:
 *
 *   crash-after-insert:N     SIGKILL this process right after its Nth confirmed
 *                            insert, before the batch is acknowledged in Redis
 *   clickhouse-down-file:P   while file P exists, every insert fails as if
 *                            ClickHouse were unreachable (retryable)
 */
import { existsSync } from 'node:fs';
import { ClickHouseWriteError } from '../errors.js';

export interface Faults {
  /** Called before each insert; throws while ClickHouse is "down". */
  beforeInsert(): void;
  /** Called after each confirmed insert, before its acknowledgement. */
  afterInsert(): void;
  readonly description: string;
}

export function faultsFromEnv(env: NodeJS.ProcessEnv): Faults | undefined {
  const spec = env.EVENT_LENS_FAULTS?.trim();
  if (!spec) return undefined;
  let crashAfter = Infinity;
  let downFile: string | undefined;
  for (const part of spec.split(',')) {
    const [name, value = ''] = part.split(/:(.*)/s, 2) as [string, string?];
    if (name === 'crash-after-insert' && /^\d+$/.test(value)) crashAfter = Number(value);
    else if (name === 'clickhouse-down-file' && value) downFile = value;
    else throw new Error(`EVENT_LENS_FAULTS: ${JSON.stringify(part)} is not crash-after-insert:N or clickhouse-down-file:PATH`);
  }
  let inserts = 0;
  return {
    description: spec,
    beforeInsert() {
      if (downFile && existsSync(downFile)) {
        throw new ClickHouseWriteError('connect ECONNREFUSED (fault hook: clickhouse-down-file exists)', true);
      }
    },
    afterInsert() {
      inserts += 1;
      if (inserts >= crashAfter) process.kill(process.pid, 'SIGKILL');
    },
  };
}
