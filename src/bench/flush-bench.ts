/**
 * Flush benchmarks on the same final rows, side by side:
 *
 * - rawInsert: plain @clickhouse/client inserts (FLUSH_MAX_ROWS per insert),
 *   no Redis: ClickHouse's own cost, in both layouts (JSONEachRow objects and
 *   the positional JSONCompactEachRow rows the buffer emits); the faster one
 *   is the ceiling the flusher and endToEnd are measured against. Next to it, the first 2 000
 *   of the rows in inserts of 25, as one shard's partial batches would be: the
 *   fixed cost of an insert, which is why the flusher groups shards.
 * - flush: Event Lens's flusher draining a prepared backlog of those rows
 *   from the shards' ready lists (claim → insert with token → ack).
 */
import { Readable } from 'node:stream';
import { ulid } from 'ulid';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { queryRows, type ClickHouse } from '../clickhouse/client.js';
import type { Config } from '../config.js';
import { EVENT_ROW_COLUMNS, isPositionalRow, positionalRow } from '../event/columns.js';
import { Flusher, flusherOptions } from '../flush/flusher.js';
import { deleteByPrefix, type RedisClient } from '../ops/redis.js';

export interface FlushBenchResult {
  flushRows: number;
  /** The faster of the two layouts. */
  rawInsertRowsPerSec: number;
  rawInsertObjectsRowsPerSec: number;
  rawInsertPositionalRowsPerSec: number;
  /** Plain inserts of 25 rows each (2 000 rows): rows/s and ms per insert. */
  smallInsertRowsPerSec: number;
  smallInsertMs: number;
  flushRowsPerSec: number;
  flushVsRawInsert: number;
}

async function countRows(ch: ClickHouse): Promise<number> {
  const [row] = await queryRows<{ n: string | number }>(ch, `SELECT count() AS n FROM ${ch.database}.events`);
  return Number(row?.n ?? 0);
}

/** Plain inserts of `batch` rows each (objects, or positional rows); returns the seconds taken. */
async function plainInserts(ch: ClickHouse, rows: readonly string[], batch: number): Promise<number> {
  await ch.client.command({ query: `TRUNCATE TABLE ${ch.database}.events` });
  const format = rows[0] !== undefined && isPositionalRow(rows[0]) ? `(${EVENT_ROW_COLUMNS.join(', ')}) FORMAT JSONCompactEachRow` : 'FORMAT JSONEachRow';
  const started = performance.now();
  for (let i = 0; i < rows.length; i += batch) {
    const r = await ch.client.exec({
      query: `INSERT INTO ${ch.database}.events ${format}`,
      values: Readable.from([Buffer.from(rows.slice(i, i + batch).join('\n'))], { objectMode: false }),
    });
    r.stream.resume();
  }
  const seconds = (performance.now() - started) / 1000;
  if ((await countRows(ch)) !== rows.length) throw new Error(`plain inserts of ${batch}: row count mismatch`);
  return seconds;
}

/** `objectRows`: the final rows as JSON objects; the flusher gets them in the positional layout the buffer emits. */
export async function benchFlush(redis: RedisClient, ch: ClickHouse, config: Config, objectRows: readonly string[]): Promise<FlushBenchResult> {
  const rows = objectRows.map((r) => positionalRow(JSON.parse(r) as Record<string, unknown>));
  const small = rows.slice(0, 2_000);
  const smallSeconds = await plainInserts(ch, small, 25);
  const objectSeconds = await plainInserts(ch, objectRows, config.flushMaxRows);
  const positionalSeconds = await plainInserts(ch, rows, config.flushMaxRows);
  const rawSeconds = Math.min(objectSeconds, positionalSeconds);

  await ch.client.command({ query: `TRUNCATE TABLE ${ch.database}.events` });
  const prefix = `bench-flush-${ulid()}`;
  const settings = { ...config, keyPrefix: prefix };
  const buffer = new SessionBuffer(redis, settings);
  for (let i = 0; i < rows.length; i += 5_000) {
    const pipeline = redis.pipeline();
    rows.slice(i, i + 5_000).forEach((row, k) => pipeline.rpush(buffer.shardKeys((i + k) % settings.bufferShards).ready, row));
    await pipeline.exec();
  }
  const flusher = new Flusher(redis, buffer, ch, flusherOptions({ ...config, flushIntervalMs: 0 }, prefix));
  const started = performance.now();
  const flushed = await flusher.tick(true);
  const flushSeconds = (performance.now() - started) / 1000;
  await flusher.release();
  await deleteByPrefix(redis, `${prefix}:`);
  if (flushed.rows !== rows.length || (await countRows(ch)) !== rows.length) throw new Error('flush: row count mismatch');

  const raw = rows.length / rawSeconds;
  const flush = rows.length / flushSeconds;
  return {
    flushRows: rows.length,
    rawInsertRowsPerSec: Math.round(raw),
    rawInsertObjectsRowsPerSec: Math.round(rows.length / objectSeconds),
    rawInsertPositionalRowsPerSec: Math.round(rows.length / positionalSeconds),
    smallInsertRowsPerSec: Math.round(small.length / smallSeconds),
    smallInsertMs: Number(((smallSeconds * 1000) / Math.ceil(small.length / 25)).toFixed(1)),
    flushRowsPerSec: Math.round(flush),
    flushVsRawInsert: Number((flush / raw).toFixed(3)),
  };
}
