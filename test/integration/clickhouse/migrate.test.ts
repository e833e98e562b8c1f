import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../../src/clickhouse/client.js';
import { migrate, MIGRATIONS_DIR, splitStatements } from '../../../src/clickhouse/migrate.js';
import { MigrationError } from '../../../src/errors.js';
import { testClickHouse, type TestClickHouse } from '../../helpers/services.js';

let clickhouse: TestClickHouse;
const dirs: string[] = [];

/** A copy of migrations/ in a temporary directory, removed after the file's tests. */
function migrationsCopy(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'migrations-'));
  dirs.push(dir);
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  clickhouse = await testClickHouse(); // already migrated once
});
afterAll(async () => {
  await clickhouse.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('migrate', () => {
  it('creates the events table with the column names of DESIGN §5', async () => {
    const columns = await queryRows<{ name: string }>(
      clickhouse.ch,
      'SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
      { db: clickhouse.database, t: 'events' },
    );
    expect(columns.map((c) => c.name)).toEqual([
      'id', 'projectId', 'name', 'deviceId', 'profileId', 'sessionId', 'createdAt', 'timestamp', 'country', 'city', 'region',
      'latitude', 'longitude', 'os', 'osVersion', 'browser', 'browserVersion', 'device', 'brand', 'model', 'path', 'origin',
      'referrer', 'referrerName', 'referrerType', 'utmSource', 'utmMedium', 'utmCampaign', 'utmTerm', 'utmContent',
      'properties', 'duration', 'screenViews', 'engagedMs', 'ip', 'userAgent',
    ]);
  });

  it('changes nothing on a second run', async () => {
    const r = await migrate(clickhouse.ch, { retentionDays: 0 });
    expect(r.applied).toEqual([]);
    expect(r.skipped).toContain('0001_events.sql');
  });

  it('prints the plan without applying it in dry-run mode', async () => {
    const dir = migrationsCopy();
    writeFileSync(path.join(dir, '0999_extra.sql'), 'CREATE TABLE IF NOT EXISTS {{database}}.extra (x UInt8) ENGINE = Memory;\n');
    const plan = await migrate(clickhouse.ch, { retentionDays: 0, dryRun: true, dir });
    expect(plan.applied).toEqual(['0999_extra.sql']);
    expect(plan.statements).toEqual([`CREATE TABLE IF NOT EXISTS ${clickhouse.database}.extra (x UInt8) ENGINE = Memory`]);
    const tables = await queryRows(clickhouse.ch, 'SELECT name FROM system.tables WHERE database = {db:String} AND name = {t:String}', {
      db: clickhouse.database,
      t: 'extra',
    });
    expect(tables).toEqual([]);
  });

  it('refuses to run when an applied file was edited, naming the file', async () => {
    const dir = migrationsCopy();
    writeFileSync(path.join(dir, '0001_events.sql'), '-- edited\nSELECT 1;\n');
    await expect(migrate(clickhouse.ch, { retentionDays: 0, dir })).rejects.toThrow(/migrations\/0001_events.sql: the file changed after it was applied/);
  });

  it('names the file and the statement that failed', async () => {
    const dir = migrationsCopy();
    writeFileSync(path.join(dir, '0998_broken.sql'), 'SELECT 1;\nCREATE TABLE nonsense here;\n');
    const error = await migrate(clickhouse.ch, { retentionDays: 0, dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toMatch(/migrations\/0998_broken.sql: statement 2 failed \(CREATE TABLE nonsense here\)/);
  });

  it('creates the sessions and profiles tables and every dashboard view', async () => {
    const tables = await queryRows<{ name: string }>(clickhouse.ch, 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', {
      db: clickhouse.database,
    });
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining([
        'sessions', 'profiles', 'profiles_mv', 'daily_metrics', 'daily_metrics_mv', 'pages_daily', 'pages_daily_mv',
        'referrers_daily', 'referrers_daily_mv', 'geo_daily', 'geo_daily_mv', 'devices_daily', 'devices_daily_mv',
        'event_names_daily', 'event_names_daily_mv', 'sessions_daily', 'sessions_daily_mv',
      ]),
    );
  });

  it('plans ON CLUSTER statements with Replicated engines in cluster mode', async () => {
    const plan = await migrate({ ...clickhouse.ch, database: `${clickhouse.database}_c` }, { retentionDays: 0, dryRun: true, cluster: 'analytics' });
    const sql = plan.statements.join('\n');
    expect(sql).toContain(`CREATE TABLE IF NOT EXISTS ${clickhouse.database}_c.events ON CLUSTER 'analytics'`);
    expect(sql).toContain('ENGINE = ReplicatedMergeTree');
    expect(sql).toContain('ENGINE = ReplicatedReplacingMergeTree(version)');
    expect(sql).toContain('ENGINE = ReplicatedAggregatingMergeTree');
    expect(sql).not.toMatch(/\{\{/);
  });

  it('adds the retention TTL when retention is configured', async () => {
    const plan = await migrate(
      { ...clickhouse.ch, database: `${clickhouse.database}_ttl` },
      { retentionDays: 90, dryRun: true },
    );
    expect(plan.statements.join('\n')).toContain('TTL toDateTime(createdAt) + toIntervalDay(90)');
  });
});

describe('splitStatements', () => {
  it('splits at a semicolon that ends a line and drops comment-only pieces', () => {
    expect(splitStatements("-- a comment;\nSELECT ';';\nSELECT 2;\n-- trailing\n")).toEqual(["-- a comment;\nSELECT ';'", 'SELECT 2']);
  });
});
