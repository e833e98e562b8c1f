/**
 * The flusher against real Redis and real ClickHouse: rows leave Redis only
 * after ClickHouse confirmed them, and a batch inserted twice is stored once.
 */
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { beforeEach, describe, expect, it } from 'vitest';
import { scripts } from '../../../src/buffer/scripts.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { queryRows } from '../../../src/clickhouse/client.js';
import { ClickHouseWriteError } from '../../../src/errors.js';
import { Flusher, type FlusherOptions } from '../../../src/flush/flusher.js';
import { ev, settings, T0 } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: true });
let buffer: SessionBuffer;
const options = (owner: string): FlusherOptions => ({ owner, leaseMs: 200, flushMaxRows: 50, flushMaxBytes: 1 << 20, flushIntervalMs: 0, maxAttempts: 2 });
let run = 0;
beforeEach(async () => {
  run += 1;
  buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}f${run}`, { bufferShards: 1 }));
  await services.clickhouse.ch.client.command({ query: `TRUNCATE TABLE ${services.clickhouse.database}.events` });
});

const count = async (): Promise<number> =>
  Number((await queryRows<{ n: string }>(services.clickhouse.ch, `SELECT count() AS n FROM ${services.clickhouse.database}.events`))[0]?.n);

async function readyClicks(n: number, from = 0): Promise<void> {
  const events = Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return ev({ id: `c${i}`, createdAtMs: T0 + i, kind: 'o', sessionId: `s${i % 7}` });
  });
  await buffer.ingest(events, T0);
}

describe('Flusher', () => {
  it('inserts ready rows in batches of at most flushMaxRows and removes them after the insert', async () => {
    await readyClicks(120);
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, options('a'));
    expect(await flusher.tick(true)).toEqual({ rows: 120, sessions: 0, batches: 3 });
    expect(await count()).toBe(120);
    expect((await buffer.backlog())[0]).toMatchObject({ ready: 0, inBatch: 0 });
  });

  it('inserts rows of the previous layout (JSON objects, held across an upgrade) next to positional ones, each once, also when re-inserted', async () => {
    await readyClicks(10);
    const sk = buffer.shardKeys(0);
    // the previous release's rows: the same columns as a JSON object
    const objects = Array.from({ length: 6 }, (_, i) => JSON.stringify({ duration: 7, screenViews: 0, id: `old${i}`, projectId: 'p1', name: 'click', sessionId: 's1', createdAt: '2026-10-01 10:00:00.000', timestamp: '2026-10-01 10:00:00.000', path: '/old' }));
    await services.redis.rpush(sk.ready, ...objects);
    const claim = (await scripts.claimBatch.run(services.redis, [sk.ready, sk.batch, sk.batchMeta, sk.lease], ['dead', 60_000, 'BATCH-M', 50, 1 << 20])) as string[];
    expect(claim.slice(2)).toHaveLength(16);
    const dead = new Flusher(services.redis, buffer, services.clickhouse.ch, options('dead'));
    await dead.insert(claim[1] as string, claim.slice(2));
    await services.redis.del(sk.lease);
    const other = new Flusher(services.redis, buffer, services.clickhouse.ch, options('other'));
    expect((await other.flushShard(0)).rows).toBe(16);
    const rows = await queryRows<{ id: string; duration: number | null; path: string }>(
      services.clickhouse.ch,
      `SELECT id, duration, path FROM ${services.clickhouse.database}.events ORDER BY id`,
    );
    expect(rows).toHaveLength(16);
    expect(rows.filter((r) => r.id.startsWith('old')).map((r) => [r.duration, r.path])).toEqual(Array.from({ length: 6 }, () => [7, '/old']));
    expect(rows.filter((r) => r.id.startsWith('c')).every((r) => r.duration === null && r.path === `/page/${r.id}`)).toBe(true);
  });

  it('inserts positional rows of release 0.1.0 (duration and screenViews, no engagedMs) next to current ones, with engagedMs NULL', async () => {
    await readyClicks(4);
    const sk = buffer.shardKeys(0);
    // what 0.1.0's ingest and sweep wrote: two figures, then the payload
    const old = [ev({ id: 'old0', createdAtMs: T0, kind: 'v' }), ev({ id: 'old1', createdAtMs: T0 + 1, kind: 'o' })].map((e, i) => `[${i === 0 ? 5000 : 'null'},0,${e.payload.slice(1)}`);
    await services.redis.rpush(sk.ready, ...old);
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, options('a'));
    expect((await flusher.tick(true)).rows).toBe(6);
    const rows = await queryRows<{ id: string; duration: number | null; engagedMs: number | null; path: string }>(
      services.clickhouse.ch,
      `SELECT id, duration, engagedMs, path FROM ${services.clickhouse.database}.events WHERE id LIKE 'old%' ORDER BY id`,
    );
    expect(rows).toEqual([
      { id: 'old0', duration: 5000, engagedMs: null, path: '/page/old0' },
      { id: 'old1', duration: null, engagedMs: null, path: '/page/old1' },
    ]);
  });

  it('re-inserts a batch of objects only as the previous release did, with its token, so a batch the previous release inserted before it died is stored once', async () => {
    const sk = buffer.shardKeys(0);
    const objects = Array.from({ length: 5 }, (_, i) => JSON.stringify({ duration: null, screenViews: 0, id: `old${i}`, projectId: 'p1', name: 'click', sessionId: 's1', createdAt: '2026-10-01 10:00:00.000', timestamp: '2026-10-01 10:00:00.000' }));
    await services.redis.rpush(sk.ready, ...objects);
    const claim = (await scripts.claimBatch.run(services.redis, [sk.ready, sk.batch, sk.batchMeta, sk.lease], ['old', 60_000, 'BATCH-O', 50, 1 << 20])) as string[];
    // what the previous release sent: JSONEachRow with the batch's token
    const { Readable } = await import('node:stream');
    const r = await services.clickhouse.ch.client.exec({
      query: `INSERT INTO ${services.clickhouse.database}.events FORMAT JSONEachRow`,
      values: Readable.from([Buffer.from(claim.slice(2).join('\n'))], { objectMode: false }),
      clickhouse_settings: { insert_deduplication_token: claim[1] as string },
    });
    r.stream.resume();
    await services.redis.del(sk.lease);
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, options('new'));
    expect((await flusher.flushShard(0)).rows).toBe(5);
    expect(await count()).toBe(5);
  });

  it('re-reads the same batch with the same token after the flusher is killed between insert and ack, and stores it once', async () => {
    await readyClicks(30);
    const sk = buffer.shardKeys(0);
    // the first flusher claims and inserts, then "dies" before acknowledging
    const claim = (await scripts.claimBatch.run(services.redis, [sk.ready, sk.batch, sk.batchMeta, sk.lease], ['dead', 60_000, 'BATCH-1', 50, 1 << 20])) as string[];
    const dead = new Flusher(services.redis, buffer, services.clickhouse.ch, options('dead'));
    await dead.insert(claim[1] as string, claim.slice(2));
    expect(await count()).toBe(30);
    // another flusher is kept out while the lease lives, and finishes the same batch once it expired
    const other = new Flusher(services.redis, buffer, services.clickhouse.ch, options('other'));
    expect((await other.flushShard(0)).rows).toBe(0);
    await services.redis.del(sk.lease); // what the lease's expiry does
    expect((await other.flushShard(0)).rows).toBe(30);
    expect(await count()).toBe(30);
    expect((await buffer.backlog())[0]).toMatchObject({ ready: 0, inBatch: 0 });
  });

  it('moves a row ClickHouse rejects to the dead-letter list with the server message and inserts the rest', async () => {
    await readyClicks(9);
    await services.redis.rpush(buffer.shardKeys(0).ready, '{"id":"bad","createdAt":"not a date"}');
    await readyClicks(5, 9);
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { ...options('a'), flushMaxRows: 100 });
    expect((await flusher.flushShard(0)).rows).toBe(14);
    expect(await count()).toBe(14);
    const dead = (await services.redis.lrange(buffer.shardKeys(0).dead, 0, -1)).map((d) => JSON.parse(d) as { error: string; row: { id: string } });
    expect(dead).toHaveLength(1);
    expect(dead[0]?.row.id).toBe('bad');
    expect(dead[0]?.error).toMatch(/insert failed: .*(DateTime|parse)/i);
    expect((await buffer.backlog())[0]).toMatchObject({ ready: 0, inBatch: 0 });
  });

  it('keeps the batch in Redis while ClickHouse is unreachable, then inserts it once it is back', async () => {
    await readyClicks(6);
    const down = { ...services.clickhouse.ch, client: createClient({ url: 'http://127.0.0.1:1', request_timeout: 500, log: { level: ClickHouseLogLevel.OFF } }) };
    const failing = new Flusher(services.redis, buffer, down, { ...options('a'), maxAttempts: 2 }, async () => {});
    const error = await failing.flushShard(0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClickHouseWriteError);
    expect((error as ClickHouseWriteError).retryable).toBe(true);
    expect((await buffer.backlog())[0]).toMatchObject({ inBatch: 6 });
    const back = new Flusher(services.redis, buffer, services.clickhouse.ch, options('a'));
    expect((await back.flushShard(0)).rows).toBe(6);
    expect(await count()).toBe(6);
  });

  it('dead-letters no good row when ClickHouse fails for a reason that is not the data (a missing table), and inserts them once it is back', async () => {
    await readyClicks(16);
    const db = services.clickhouse.database;
    await services.clickhouse.ch.client.command({ query: `RENAME TABLE ${db}.events TO ${db}.events_away` });
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { ...options('a'), maxAttempts: 2 }, async () => {});
    let error: unknown;
    try {
      error = await flusher.flushShard(0).catch((e: unknown) => e);
    } finally {
      await services.clickhouse.ch.client.command({ query: `RENAME TABLE ${db}.events_away TO ${db}.events` });
    }
    expect(error).toBeInstanceOf(ClickHouseWriteError);
    expect((error as ClickHouseWriteError).retryable).toBe(true);
    expect(await services.redis.llen(buffer.shardKeys(0).dead)).toBe(0);
    expect((await buffer.backlog())[0]).toMatchObject({ inBatch: 16 });
    expect((await flusher.flushShard(0)).rows).toBe(16);
    expect(await count()).toBe(16);
  });

  it('treats a batch whose every row fails alone as systemic: retried, not dead-lettered', async () => {
    for (let i = 0; i < 10; i += 1) await services.redis.rpush(buffer.shardKeys(0).ready, `{"id":"bad${i}","createdAt":"not a date"}`);
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { ...options('a'), maxAttempts: 1 }, async () => {});
    const error = await flusher.flushShard(0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClickHouseWriteError);
    expect((error as ClickHouseWriteError).retryable).toBe(true);
    expect((error as Error).message).toContain('every one of the 10 rows');
    expect(await services.redis.llen(buffer.shardKeys(0).dead)).toBe(0);
    expect((await buffer.backlog())[0]).toMatchObject({ inBatch: 10 });
  });

  it('flushes a partial batch only once flushIntervalMs has passed since the shard last flushed', async () => {
    await readyClicks(3);
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { ...options('a'), flushIntervalMs: 60_000 });
    expect((await flusher.tick()).rows).toBe(3); // never flushed before
    await readyClicks(2, 3);
    expect((await flusher.tick()).rows).toBe(0);
    expect((await flusher.tick(true)).rows).toBe(2);
    expect(await count()).toBe(5);
  });
});
