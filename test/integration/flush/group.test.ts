/**
 * Group inserts against real Redis and real ClickHouse: the new batches of
 * several shards go in as one insert, and every way a group can be cut short
 * (crash after the insert, after some acknowledgements, before the commit,
 * ClickHouse rejecting a row) ends with each row stored exactly once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, expect, it } from 'vitest';
import { scripts } from '../../../src/buffer/scripts.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { queryRows } from '../../../src/clickhouse/client.js';
import { Flusher, type FlusherOptions } from '../../../src/flush/flusher.js';
import type { Faults } from '../../../src/ops/faults.js';
import { ev, settings, T0 } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: true });
const SHARDS = 4;
let buffer: SessionBuffer;
let run = 0;

/** Records the inserts a flusher made: table and row count. */
function options(owner: string, inserts: number[] = [], faults?: Faults): FlusherOptions {
  return {
    owner,
    leaseMs: 60_000,
    flushMaxRows: 1_000,
    flushMaxBytes: 1 << 20,
    flushIntervalMs: 0,
    maxAttempts: 2,
    onInserted: (table, rows) => {
      if (table.endsWith('.events')) inserts.push(rows.length);
    },
    ...(faults ? { faults } : {}),
  };
}

/** Faults that "kill" the flusher (throw) right after its first confirmed insert. */
const dieAfterInsert = (): Faults => ({ description: 'test', beforeInsert() {}, outgoing: (rows) => rows, afterInsert: () => { throw new Error('killed after insert'); } });

beforeEach(async () => {
  run += 1;
  buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}g${run}`, { bufferShards: SHARDS }));
  await services.clickhouse.ch.client.command({ query: `TRUNCATE TABLE ${services.clickhouse.database}.events` });
});

const ids = async (): Promise<string[]> =>
  (await queryRows<{ id: string }>(services.clickhouse.ch, `SELECT id FROM ${services.clickhouse.database}.events ORDER BY id`)).map((r) => r.id);

/** n clicks spread over sessions (and so over every shard); returns their ids, sorted. */
async function readyClicks(n: number): Promise<string[]> {
  const events = Array.from({ length: n }, (_, i) => ev({ id: `c${String(i).padStart(4, '0')}`, createdAtMs: T0 + i, kind: 'o', sessionId: `s${i % 13}` }));
  await buffer.ingest(events, T0);
  const backlog = await buffer.backlog();
  expect(backlog.filter((b) => b.ready > 0).length).toBe(SHARDS);
  return events.map((e) => e.id).sort();
}

const expireLeases = async (): Promise<void> => {
  for (let shard = 0; shard < SHARDS; shard += 1) await services.redis.del(buffer.shardKeys(shard).lease);
};

const emptyEverywhere = async (): Promise<void> => {
  for (const b of await buffer.backlog()) expect(b).toMatchObject({ ready: 0, inBatch: 0 });
};

describe('group inserts', () => {
  it('puts the new batches of every shard into one insert', async () => {
    const want = await readyClicks(200);
    const inserts: number[] = [];
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, options('a', inserts));
    expect(await flusher.tick(true)).toMatchObject({ rows: 200, batches: SHARDS });
    expect(inserts).toEqual([200]);
    expect(await ids()).toEqual(want);
    await emptyEverywhere();
  });

  it('keeps groups within flushMaxRows', async () => {
    await readyClicks(200);
    const inserts: number[] = [];
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { ...options('a', inserts), flushMaxRows: 120 });
    await flusher.tick(true);
    expect(Math.max(...inserts)).toBeLessThanOrEqual(120);
    expect(inserts.reduce((a, n) => a + n, 0)).toBe(200);
    expect(inserts.length).toBeLessThan(SHARDS);
  });

  it('drains a backlog in inserts that fill flushMaxRows, also when the shards do not divide it', async () => {
    await readyClicks(200);
    const inserts: number[] = [];
    // 4 shards, 30 rows an insert: a share of 8 rows a shard would make rounds of 32, one insert of 24 and one of 8
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { ...options('a', inserts), flushMaxRows: 30 });
    await flusher.tick(true);
    console.info(`drain inserts: ${inserts.join(', ')}`);
    expect(Math.max(...inserts)).toBeLessThanOrEqual(30);
    expect(inserts.reduce((a, n) => a + n, 0)).toBe(200);
    expect(inserts.length).toBeLessThanOrEqual(Math.ceil(200 / (30 - SHARDS)) + 1);
  });

  it('finishes a group whose flusher died after the insert, storing each row once', async () => {
    const want = await readyClicks(200);
    const dead = new Flusher(services.redis, buffer, services.clickhouse.ch, options('dead', [], dieAfterInsert()));
    await expect(dead.tick(true)).rejects.toThrow('killed after insert');
    expect(await ids()).toEqual(want);
    await expireLeases();
    const inserts: number[] = [];
    const other = new Flusher(services.redis, buffer, services.clickhouse.ch, options('other', inserts));
    expect((await other.tick(true)).rows).toBe(200);
    expect(inserts).toEqual([200]); // the same group again: same rows, same token
    expect(await ids()).toEqual(want);
    await emptyEverywhere();
  });

  it('acknowledges the rest of a group some of whose batches were acknowledged, without inserting again', async () => {
    const want = await readyClicks(200);
    const dead = new Flusher(services.redis, buffer, services.clickhouse.ch, options('dead', [], dieAfterInsert()));
    await expect(dead.tick(true)).rejects.toThrow();
    // the dead flusher had acknowledged one non-leader batch before it died
    const metas = await Promise.all(Array.from({ length: SHARDS }, (_, s) => services.redis.hgetall(buffer.shardKeys(s).batchMeta)));
    // (the meta field keeps its 0.1.0 name, members, so groups in flight survive an upgrade)
    const batches = (metas.find((m) => m.members)?.members ?? '').split(',');
    expect(batches.length).toBe(SHARDS);
    const [shard, id] = (batches[1] as string).split(':') as [string, string];
    const sk = buffer.shardKeys(Number(shard));
    expect(await scripts.ackBatch.run(services.redis, [sk.batch, sk.batchMeta, sk.stats, sk.dead], [id])).toBeGreaterThan(0);
    await expireLeases();
    const inserts: number[] = [];
    const other = new Flusher(services.redis, buffer, services.clickhouse.ch, options('other', inserts));
    await other.tick(true);
    expect(inserts).toEqual([]);
    expect(await ids()).toEqual(want);
    await emptyEverywhere();
  });

  it('aborts a group that was never committed, and refuses its commit afterwards', async () => {
    const want = await readyClicks(200);
    // a flusher claims every shard and joins two non-leaders, then dies before the commit on shard 0
    const claimed = [];
    for (let shard = 0; shard < SHARDS; shard += 1) {
      const sk = buffer.shardKeys(shard);
      claimed.push((await scripts.claimBatch.run(services.redis, [sk.ready, sk.batch, sk.batchMeta, sk.lease], ['dead', 60_000, `B${shard}`, 1_000, 1 << 20])) as string[]);
    }
    const list = claimed.map((_, shard) => `${shard}:B${shard}`).join(',');
    const step = (shard: number, mode: string, batches = ''): Promise<unknown> =>
      scripts.flushGroup.run(services.redis, [buffer.shardKeys(shard).batchMeta, buffer.shardKeys(shard).lease], [mode, `B${shard}`, 'G1', 'dead', batches]);
    expect(await step(1, 'join', list)).toEqual([1]);
    expect(await step(2, 'join', list)).toEqual([1]);
    await expireLeases();
    const inserts: number[] = [];
    const other = new Flusher(services.redis, buffer, services.clickhouse.ch, options('other', inserts));
    expect((await other.tick(true)).rows).toBe(200);
    expect(await ids()).toEqual(want);
    await emptyEverywhere();
    // the batches left the group and went in on their own, each under its own token
    expect(inserts.length).toBeGreaterThan(1);
  });

  it('refuses the commit of a group a recoverer has asked about, even to the flusher that still holds the lease', async () => {
    await readyClicks(200);
    const sk = (shard: number) => buffer.shardKeys(shard);
    for (const shard of [0, 1]) {
      await scripts.claimBatch.run(services.redis, [sk(shard).ready, sk(shard).batch, sk(shard).batchMeta, sk(shard).lease], ['slow', 60_000, `B${shard}`, 1_000, 1 << 20]);
    }
    const step = (shard: number, mode: string, owner: string, batches = ''): Promise<unknown> =>
      scripts.flushGroup.run(services.redis, [sk(shard).batchMeta, sk(shard).lease], [mode, `B${shard}`, 'G2', owner, batches]);
    expect(await step(1, 'join', 'slow', '0:B0,1:B1')).toEqual([1]);
    // a recoverer finds B1 in G2 and asks the leader before the slow flusher committed: not committed, so aborted
    expect(await step(0, 'resolve', 'other')).toEqual([0]);
    expect(await step(0, 'commit', 'slow', '0:B0,1:B1')).toEqual([0]);
    // without the question, the same commit goes through
    expect(await scripts.flushGroup.run(services.redis, [sk(0).batchMeta, sk(0).lease], ['commit', 'B0', 'G3', 'slow', '0:B0'])).toEqual([1]);
  });

  it('stores each row once when two flushers with short leases group the same shards at the same time', async () => {
    const want: string[] = [];
    const short = (owner: string): FlusherOptions => ({ ...options(owner), leaseMs: 30, flushMaxRows: 40 });
    const a = new Flusher(services.redis, buffer, services.clickhouse.ch, short('a'));
    const b = new Flusher(services.redis, buffer, services.clickhouse.ch, short('b'));
    for (let round = 0; round < 4; round += 1) {
      const events = Array.from({ length: 150 }, (_, i) => ev({ id: `r${round}-${String(i).padStart(3, '0')}`, createdAtMs: T0 + i, kind: 'o', sessionId: `s${i % 13}` }));
      await buffer.ingest(events, T0);
      want.push(...events.map((e) => e.id));
      // leases of 30 ms expire while a works (a group insert takes longer): b, started 35 ms later,
      // claims a's batches again and finishes a's groups, while a finishes them too
      await Promise.all([a.tick(true), sleep(35).then(() => b.tick(true)), a.tick(true)]);
    }
    await Promise.all([a.tick(true), b.tick(true)]);
    expect(await ids()).toEqual(want.sort());
    // the race happened: b (which never runs alongside itself) took over batches or groups that a had fixed
    console.info(`group race: recovered a=${JSON.stringify(a.recovered)} b=${JSON.stringify(b.recovered)}`);
    expect(b.recovered.batches + b.recovered.groups).toBeGreaterThan(0);
    await emptyEverywhere();
  });

  it('stores each row once when one flusher is ticked again while its tick is grouping (ticks of one flusher take turns)', async () => {
    const want = await readyClicks(200);
    const inserts: number[] = [];
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, options('a', inserts));
    // the second tick holds the same lease: it would see the first one's fresh batches as unacknowledged
    // and insert them alone, under their own ids, while the first inserts them as one group
    const [first, second] = await Promise.all([flusher.tick(true), flusher.tick(true)]);
    expect(first.rows + second.rows).toBe(200);
    expect(await ids()).toEqual(want);
    expect(inserts).toEqual([200]);
    await emptyEverywhere();
  });

  it('splits a group ClickHouse rejects: the bad row is dead-lettered in its shard, the rest inserted once', async () => {
    const want = await readyClicks(200);
    await services.redis.rpush(buffer.shardKeys(2).ready, '{"id":"bad","createdAt":"not a date"}');
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, options('a'));
    expect((await flusher.tick(true)).rows).toBe(200);
    expect(await ids()).toEqual(want);
    const dead = (await services.redis.lrange(buffer.shardKeys(2).dead, 0, -1)).map((d) => JSON.parse(d) as { row: { id: string } });
    expect(dead.map((d) => d.row.id)).toEqual(['bad']);
    await emptyEverywhere();
  });
});
