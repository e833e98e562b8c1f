/**
 * The legacy upgrade: converts an `events` table whose `properties` column is
 * a JSON string into the current schema with `Map(String, String)`.
 *
 * 1. `events_new` is created with the current schema (migration 0001's DDL).
 * 2. Partition by partition (newest first on request), rows are streamed out,
 *    `properties` is flattened with the same `toDots` as ingestion (nested
 *    objects and arrays, not just top-level strings; a value that is not a JSON
 *    object is kept whole under `$legacy`), and inserted in chunks whose
 *    insert_deduplication_token is `legacy:<partition>:<chunk>`.
 * 3. Each partition's row count is verified and recorded in
 *    `legacy_migration`. A crash anywhere is resumed by running the command
 *    again: recorded partitions are skipped, a partly copied one is dropped
 *    from `events_new` and copied again.
 * 4. A catch-up pass copies again any partition whose legacy row count
 *    changed meanwhile (writers kept writing), then `EXCHANGE TABLES events
 *    AND events_new` switches atomically; readers never see a missing table.
 *    The legacy table stays as `events_legacy` for rollback until --drop-old.
 *
 * Rows written to the legacy table between the catch-up pass and the
 * exchange are not copied; stop the writers for that moment (or run the
 * command again after the switch with --rollback, then again).
 */
import { Readable } from 'node:stream';
import { toDots } from '../event/dots.js';
import { EventLensError } from '../errors.js';
import { queryRows, type ClickHouse } from './client.js';
import { loadMigrations, renderTemplate } from './migrate.js';

export interface LegacyOptions {
  newestFirst: boolean;
  chunkRows?: number;
  onProgress?: (rowsDone: number, rowsTotal: number, partition: string) => void;
  /** Test hook: stop (as a crash would) after copying this many partitions. */
  stopAfterPartitions?: number;
}

export interface LegacySummary {
  state: 'switched' | 'interrupted';
  /** Every partition of the legacy table; `copied` when this run copied it. */
  partitions: { partition: string; rows: number; copied: boolean }[];
  rowsCopied: number;
  unparsedProperties: number;
}

async function columnType(ch: ClickHouse, table: string, column: string): Promise<string | undefined> {
  const rows = await queryRows<{ type: string }>(
    ch,
    'SELECT type FROM system.columns WHERE database = {db:String} AND table = {t:String} AND name = {c:String}',
    { db: ch.database, t: table, c: column },
  );
  return rows[0]?.type;
}

async function count(ch: ClickHouse, table: string, partition: string): Promise<number> {
  const [row] = await queryRows<{ n: string | number }>(ch, `SELECT count() AS n FROM ${ch.database}.${table} WHERE _partition_id = {p:String}`, { p: partition });
  return Number(row?.n ?? 0);
}

/** `properties` of a legacy row as flattened properties. */
export function legacyProperties(raw: unknown): { properties: Record<string, string>; parsed: boolean } {
  if (raw === null || raw === undefined || raw === '') return { properties: {}, parsed: true };
  try {
    const value: unknown = JSON.parse(String(raw));
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return { properties: toDots(value), parsed: true };
  } catch {
    // not JSON: kept whole below
  }
  return { properties: { $legacy: String(raw) }, parsed: false };
}

export async function migrateLegacy(ch: ClickHouse, options: LegacyOptions): Promise<LegacySummary> {
  const db = ch.database;
  const type = await columnType(ch, 'events', 'properties');
  if (type === undefined) throw new EventLensError('LEGACY_NOT_FOUND', `${db}.events has no properties column: nothing to upgrade`);
  if (type.startsWith('Map(')) throw new EventLensError('LEGACY_DONE', `${db}.events.properties is already ${type}: nothing to upgrade`);

  const statements = loadMigrations().flatMap((m) => m.statements);
  const ddl = statements.find((s) => s.includes('CREATE TABLE IF NOT EXISTS {{database}}.events '));
  if (!ddl) throw new Error('migration 0001 has no events table');
  await ch.client.command({ query: renderTemplate(ddl, { database: db, retentionDays: 0 }).replace(`${db}.events `, `${db}.events_new `) });
  // the columns later migrations added to events (0004's engagedMs, …): the switched table gets this release's schema
  for (const alter of statements.filter((s) => s.includes('ALTER TABLE {{database}}.events ') && s.includes('ADD COLUMN'))) {
    await ch.client.command({ query: renderTemplate(alter, { database: db, retentionDays: 0 }).replace(`${db}.events `, `${db}.events_new `) });
  }
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.legacy_migration (partition String, rows UInt64, doneAt DateTime64(3, 'UTC') DEFAULT now64(3))
            ENGINE = ReplacingMergeTree(doneAt) ORDER BY partition`,
  });

  const summary: LegacySummary = { state: 'interrupted', partitions: [], rowsCopied: 0, unparsedProperties: 0 };
  let copiedThisRun = 0;
  for (let pass = 0; pass < 2; pass += 1) {
    const partitions = await queryRows<{ partition: string; rows: string | number }>(
      ch,
      `SELECT partition_id AS partition, sum(rows) AS rows FROM system.parts WHERE database = {db:String} AND table = 'events' AND active
        GROUP BY partition ORDER BY partition ${options.newestFirst ? 'DESC' : 'ASC'}`,
      { db },
    );
    const done = new Map(
      (await queryRows<{ partition: string; rows: string | number }>(ch, `SELECT partition, argMax(rows, doneAt) AS rows FROM ${db}.legacy_migration GROUP BY partition`)).map(
        (r) => [r.partition, Number(r.rows)],
      ),
    );
    const total = partitions.reduce((n, p) => n + Number(p.rows), 0);
    if (pass === 0) summary.partitions = partitions.map((p) => ({ partition: p.partition, rows: Number(p.rows), copied: false }));
    let rowsDone = 0;
    for (const { partition } of partitions) {
      const legacyRows = await count(ch, 'events', partition);
      const copied = done.get(partition) === legacyRows && (await count(ch, 'events_new', partition)) === legacyRows;
      if (copied) {
        rowsDone += legacyRows;
        continue;
      }
      if (options.stopAfterPartitions !== undefined && copiedThisRun >= options.stopAfterPartitions) return summary;
      await copyPartition(ch, partition, options, summary, (n) => options.onProgress?.(rowsDone + n, total, partition));
      const migrated = await count(ch, 'events_new', partition);
      if (migrated !== legacyRows) {
        throw new EventLensError('LEGACY_COUNT_MISMATCH', `partition ${partition}: ${legacyRows} legacy rows but ${migrated} migrated rows; run the command again`);
      }
      await ch.client.insert({ table: `${db}.legacy_migration`, values: [{ partition, rows: legacyRows }], format: 'JSONEachRow' });
      const entry = summary.partitions.find((p) => p.partition === partition);
      if (entry) {
        entry.copied = true;
        entry.rows = legacyRows;
      }
      rowsDone += legacyRows;
      copiedThisRun += 1;
    }
  }
  await ch.client.command({ query: `EXCHANGE TABLES ${db}.events AND ${db}.events_new` });
  await ch.client.command({ query: `RENAME TABLE ${db}.events_new TO ${db}.events_legacy` });
  await ch.client.command({ query: `DROP TABLE ${db}.legacy_migration` });
  summary.state = 'switched';
  return summary;
}

async function copyPartition(
  ch: ClickHouse,
  partition: string,
  options: LegacyOptions,
  summary: LegacySummary,
  progress: (rows: number) => void,
): Promise<void> {
  const db = ch.database;
  await ch.client.command({ query: `ALTER TABLE ${db}.events_new DROP PARTITION ID {p:String}`, query_params: { p: partition } });
  const chunkRows = options.chunkRows ?? 50_000;
  const rs = await ch.client.query({ query: `SELECT * FROM ${db}.events WHERE _partition_id = {p:String}`, query_params: { p: partition }, format: 'JSONEachRow' });
  let chunk: string[] = [];
  let chunkNo = 0;
  let rows = 0;
  const flush = async (): Promise<void> => {
    if (chunk.length === 0) return;
    const result = await ch.client.exec({
      query: `INSERT INTO ${db}.events_new FORMAT JSONEachRow`,
      values: Readable.from([Buffer.from(chunk.join('\n'))], { objectMode: false }),
      clickhouse_settings: { insert_deduplication_token: `legacy:${partition}:${chunkNo}`, input_format_skip_unknown_fields: 1 },
    });
    result.stream.resume();
    rows += chunk.length;
    summary.rowsCopied += chunk.length;
    chunkNo += 1;
    chunk = [];
    progress(rows);
  };
  for await (const batch of rs.stream()) {
    for (const r of batch) {
      const row = r.json<Record<string, unknown>>();
      const { properties, parsed } = legacyProperties(row.properties);
      if (!parsed) summary.unparsedProperties += 1;
      chunk.push(JSON.stringify({ ...row, properties }));
      if (chunk.length >= chunkRows) await flush();
    }
  }
  await flush();
}

/** Switches back to the legacy table (kept as events_legacy); the migrated one becomes events_legacy. */
export async function rollbackLegacy(ch: ClickHouse): Promise<void> {
  const db = ch.database;
  if ((await columnType(ch, 'events_legacy', 'properties')) === undefined) {
    throw new EventLensError('LEGACY_NO_ROLLBACK', `${db}.events_legacy does not exist: nothing to roll back (was it dropped with --drop-old?)`);
  }
  await ch.client.command({ query: `EXCHANGE TABLES ${db}.events AND ${db}.events_legacy` });
}

/** Drops the kept legacy table: the end of the rollback window. */
export async function dropLegacy(ch: ClickHouse): Promise<void> {
  const db = ch.database;
  const type = await columnType(ch, 'events_legacy', 'properties');
  if (type === undefined) throw new EventLensError('LEGACY_NO_TABLE', `${db}.events_legacy does not exist`);
  if (!type.startsWith('String') && !type.startsWith('Nullable(String')) {
    throw new EventLensError('LEGACY_REFUSED', `${db}.events_legacy holds the migrated schema (after a rollback); refusing to drop it`);
  }
  await ch.client.command({ query: `DROP TABLE ${db}.events_legacy SYNC` });
}
