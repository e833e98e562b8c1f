/**
 * The embedded engine: the settings-leak guard, and the loopback endpoint
 * through which other processes use a directory a worker owns.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows, type ClickHouse } from '../../../src/clickhouse/client.js';
import { readEndpoint } from '../../../src/clickhouse/embedded-endpoint.js';

let dir: string;
let owner: ClickHouse;
let shared: ClickHouse;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-embedded-'));
  owner = await openClickHouse({ clickhouseUrl: undefined, dataDir: dir, clickhouseDatabase: 'emb' }, { serve: true });
  await owner.client.command({ query: 'CREATE DATABASE IF NOT EXISTS emb' });
  await owner.client.command({
    query: 'CREATE TABLE emb.t (id String, v UInt32) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100',
  });
  shared = await openClickHouse({ clickhouseUrl: undefined, dataDir: dir, clickhouseDatabase: 'emb' });
});
afterAll(async () => {
  await shared.close();
  await owner.close();
  rmSync(dir, { recursive: true, force: true });
});

const insert = async (ch: ClickHouse, rows: string, token?: string): Promise<void> => {
  const r = await ch.client.exec({
    query: 'INSERT INTO emb.t FORMAT JSONEachRow',
    values: Readable.from([Buffer.from(rows)], { objectMode: false }),
    ...(token ? { clickhouse_settings: { insert_deduplication_token: token } } : {}),
  });
  r.stream.resume();
};
const ids = async (ch: ClickHouse): Promise<string[]> =>
  (await queryRows<{ id: string }>(ch, 'SELECT id FROM emb.t ORDER BY id')).map((r) => r.id);

describe('embedded ClickHouse', () => {
  it('does not carry one insert\'s dedup token into the next insert', async () => {
    await insert(owner, '{"id":"a","v":1}', 'token-1');
    await insert(owner, '{"id":"a","v":1}', 'token-1');
    await insert(owner, '{"id":"b","v":2}');
    expect(await ids(owner)).toEqual(['a', 'b']);
  });

  it('does not carry a per-call setting such as max_memory_usage into later queries', async () => {
    const tight = await owner.client
      .query({ query: 'SELECT count() FROM numbers(2000000) GROUP BY number % 100000', format: 'JSONEachRow', clickhouse_settings: { max_memory_usage: '100000' } })
      .then((rs) => rs.json())
      .catch((e: unknown) => e);
    expect(String(tight)).toMatch(/memory limit/i);
    const rs = await owner.client.query({ query: 'SELECT count() AS n FROM (SELECT number % 100000 FROM numbers(2000000) GROUP BY number % 100000)', format: 'JSONEachRow' });
    expect(await rs.json()).toEqual([{ n: 100000 }]);
  });

  it('lets a second opener in the same directory use the owner\'s endpoint instead of failing', async () => {
    expect(shared.kind).toBe('shared');
    expect(readEndpoint(dir)?.pid).toBe(process.pid);
    expect(await queryRows(shared, 'SELECT {x:UInt32} * 2 AS y', { x: 21 })).toEqual([{ y: 42 }]);
  });

  it('inserts through the endpoint, with dedup tokens honoured', async () => {
    await insert(shared, '{"id":"c","v":3}', 'token-2');
    await insert(shared, '{"id":"c","v":3}', 'token-2');
    await shared.client.insert({ table: 'emb.t', values: [{ id: 'd', v: 4 }], format: 'JSONEachRow' });
    expect(await ids(shared)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('refuses settings and SET statements that would change the owner\'s session, so its batch dedup stays on', async () => {
    const bySetting = await shared.client
      .command({ query: 'SELECT 1', clickhouse_settings: { insert_deduplicate: 0 } })
      .catch((e: unknown) => e as Error);
    expect(String(bySetting)).toMatch(/does not accept the settings insert_deduplicate/);
    for (const sql of ['SET insert_deduplicate = 0', 'SELECT 1; SET insert_deduplicate = 0', '  set insert_deduplicate=0']) {
      const bySet = await shared.client.command({ query: sql }).catch((e: unknown) => e as Error);
      expect(String(bySet)).toMatch(/SET statements are refused/);
    }
    await insert(shared, '{"id":"e","v":5}', 'token-3');
    await insert(owner, '{"id":"e","v":5}', 'token-3');
    expect((await ids(owner)).filter((id) => id === 'e')).toEqual(['e']);
  });

  it('returns ClickHouse errors through the endpoint with their code and type', async () => {
    const error = (await shared.client.query({ query: 'SELECT nope FROM emb.t', format: 'JSONEachRow' }).catch((e: unknown) => e)) as {
      type?: string;
      message: string;
    };
    expect(error.type).toBe('UNKNOWN_IDENTIFIER');
    expect(error.message).toContain('nope');
  });

  it('refuses a local process that does not present the secret of endpoint.json, which only the owner can read', async () => {
    const file = path.join(dir, 'endpoint.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const info = readEndpoint(dir);
    if (!info) throw new Error('no endpoint');
    const anonymous = await fetch(`${info.url}/`, { method: 'POST', body: 'SELECT 1' });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toMatch(/AUTHENTICATION_FAILED/);
    const wrong = await fetch(`${info.url}/`, { method: 'POST', body: 'SELECT 1', headers: { 'x-clickhouse-key': 'guess' } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${info.url}/`, { method: 'POST', body: 'SELECT 1', headers: { 'x-clickhouse-key': info.secret } });
    expect(right.status).toBe(200);
    expect((await right.text()).trim()).toBe('1');
  });

  it('answers ping through the endpoint', async () => {
    expect((await shared.client.ping()).success).toBe(true);
  });
});
