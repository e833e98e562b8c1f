/**
 * The legacy upgrade against real ClickHouse: a legacy events table (JSON
 * string properties, three monthly partitions, nested JSON and a few broken
 * values) is migrated, interrupted and resumed, checked row by row, rolled
 * back, and its old table dropped.
 */
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type ClickHouse } from '../../../src/clickhouse/client.js';
import { dropLegacy, legacyProperties, migrateLegacy, rollbackLegacy } from '../../../src/clickhouse/legacy.js';
import { toDots } from '../../../src/event/dots.js';
import { generateEvents } from '../../../src/generate/model.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: true });
let ch: ClickHouse;
const legacy = new Map<string, string>();

beforeAll(async () => {
  // a database of its own holding only the legacy schema
  ch = { ...services.clickhouse.ch, database: `${services.clickhouse.database}_legacy` };
  await ch.client.command({ query: `CREATE DATABASE ${ch.database}` });
  await ch.client.command({
    query: `CREATE TABLE ${ch.database}.events (id String, projectId String, name String, sessionId String, deviceId String,
              createdAt DateTime64(3, 'UTC'), path String, country String, properties String, legacyOnly String)
            ENGINE = MergeTree PARTITION BY toYYYYMM(createdAt) ORDER BY (projectId, createdAt)`,
  });
  const months = [Date.UTC(2026, 7, 10), Date.UTC(2026, 8, 10), Date.UTC(2026, 9, 10)];
  const rows = generateEvents({ sessions: 300, seed: 8 }).map((e, i) => {
    const createdAt = (months[i % 3] as number) + i * 1_000;
    const properties = i % 97 === 0 ? '{broken json' : i % 89 === 0 ? '"just a string"' : JSON.stringify(e.properties ?? {});
    legacy.set(e.id, properties);
    return JSON.stringify({ id: e.id, projectId: e.projectId, name: e.name, sessionId: e.sessionId, deviceId: e.deviceId, createdAt, path: e.path ?? '', country: e.country, properties, legacyOnly: 'x' });
  });
  const r = await ch.client.exec({ query: `INSERT INTO ${ch.database}.events FORMAT JSONEachRow`, values: Readable.from([Buffer.from(rows.join('\n'))], { objectMode: false }) });
  r.stream.resume();
});

describe('migrate-legacy', () => {
  it('flattens nested JSON with toDots and keeps values that are not JSON objects whole', () => {
    expect(legacyProperties('{"a":{"b":[1,true]},"c":null}')).toEqual({ properties: { 'a.b.0': '1', 'a.b.1': 'true' }, parsed: true });
    expect(legacyProperties('{broken')).toEqual({ properties: { $legacy: '{broken' }, parsed: false });
    expect(legacyProperties('')).toEqual({ properties: {}, parsed: true });
  });

  it('resumes after an interruption, verifies every row, switches atomically, rolls back and drops the old table', async () => {
    const first = await migrateLegacy(ch, { newestFirst: true, stopAfterPartitions: 1, chunkRows: 500 });
    expect(first.state).toBe('interrupted');
    expect(first.partitions.map((p) => p.partition)).toEqual(['202610', '202609', '202608']);
    // still the legacy table, readers unaffected
    expect((await queryRows<{ type: string }>(ch, `SELECT toTypeName(properties) AS type FROM ${ch.database}.events LIMIT 1`))[0]?.type).toBe('String');

    const second = await migrateLegacy(ch, { newestFirst: true, chunkRows: 500 });
    expect(second.state).toBe('switched');
    expect(second.partitions.filter((p) => p.copied).map((p) => p.partition)).toEqual(['202609', '202608']);

    const migrated = await queryRows<{ id: string; properties: Record<string, string>; type: string }>(
      ch,
      `SELECT id, properties, toTypeName(properties) AS type FROM ${ch.database}.events`,
    );
    expect(migrated).toHaveLength(legacy.size);
    expect(migrated[0]?.type).toBe('Map(String, String)');
    // the switched table has this release's columns, those later migrations added too
    const columns = await queryRows<{ name: string }>(ch, `SELECT name FROM system.columns WHERE database = {db:String} AND table = 'events'`, { db: ch.database });
    expect(columns.map((c) => c.name)).toContain('engagedMs');
    const wrong = migrated.filter((row) => {
      const raw = legacy.get(row.id) ?? '';
      let expected: Record<string, string>;
      try {
        const value = JSON.parse(raw) as unknown;
        expected = value !== null && typeof value === 'object' ? { ...toDots(value) } : { $legacy: raw };
      } catch {
        expected = { $legacy: raw };
      }
      return JSON.stringify(Object.entries(row.properties).sort()) !== JSON.stringify(Object.entries(expected).sort());
    });
    expect(wrong).toEqual([]);

    await rollbackLegacy(ch);
    expect((await queryRows<{ type: string }>(ch, `SELECT toTypeName(properties) AS type FROM ${ch.database}.events LIMIT 1`))[0]?.type).toBe('String');
    await expect(dropLegacy(ch)).rejects.toThrow(/holds the migrated schema/);
    await rollbackLegacy(ch); // forward again
    await dropLegacy(ch);
    const tables = await queryRows<{ name: string }>(ch, 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', { db: ch.database });
    expect(tables.map((t) => t.name)).toEqual(['events']);
  });
});

