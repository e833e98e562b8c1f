/**
 * Group inserts: the new batches of one round, across all the shards a
 * flusher leases, go to ClickHouse as one insert (up to flushMaxRows rows),
 * because every insert costs chDB ~35 ms of CPU whatever its size (events and
 * its views). The group is fixed in Redis before the insert, exactly as a
 * batch is (lua/flushGroup-2.lua has the protocol).
 *
 * The states of a batch in a group, as its meta records them:
 *
 *   plain --join--> joined --commit (on the leader)--> committed --ack--> acked
 *   joined --(leader aborted: resolve from a recoverer)--> left --> plain
 *   committed --(ClickHouse rejects the rows)--> split --> each batch plain
 *
 * The leader's record is the commit point: a crashed group is found again,
 * with the same rows and the same token, from any batch (finish). Before its
 * commit a recoverer's question aborts it on the leader, so a late commit is
 * refused, and its batches go on their own. Acknowledgements go non-leaders
 * first, the leader last. A batch claimed before (it may have been inserted
 * on its own, under its own id) never joins a group.
 */
import type { ShardKeys } from '../buffer/keys.js';
import { flushGroup, type GroupMode } from '../buffer/scripts.js';
import { ClickHouseWriteError } from '../errors.js';
import { newUlid as ulid } from '../event/ulid.js';
import type { Faults } from '../ops/faults.js';
import type { RedisClient } from '../ops/redis.js';
import type { Inserter } from './insert.js';

/** One kind of row and the keys and table it flows through. */
export interface FlushStream {
  table: string;
  keys(sk: ShardKeys): { ready: string; batch: string; meta: string; dead: string };
}

/** A shard's batch in one stream: rows fixed under an id until acknowledged. */
export interface Batch {
  shard: number;
  id: string;
  rows: string[];
}

/** A batch named in a group's batch list. */
export interface GroupBatch {
  shard: number;
  id: string;
}

/** A batch's group, as its meta records it (see lua/flushGroup-2.lua). */
export interface GroupRef {
  token: string;
  /** Leader first. */
  batches: GroupBatch[];
}

export const batchList = (batches: readonly GroupBatch[]): string => batches.map((m) => `${m.shard}:${m.id}`).join(',');

export function parseBatchList(list: string): GroupBatch[] {
  return list.split(',').map((entry) => {
    const colon = entry.indexOf(':');
    return { shard: Number(entry.slice(0, colon)), id: entry.slice(colon + 1) };
  });
}

/**
 * Packs batches, in order, into groups within maxRows rows and maxBytes bytes
 * (a batch alone may be larger: it is never split). Pure.
 */
export function packBatches<B extends { rows: readonly string[] }>(batches: readonly B[], maxRows: number, maxBytes: number): B[][] {
  const packs: B[][] = [];
  let current: B[] = [];
  let rows = 0;
  let bytes = 0;
  for (const b of batches) {
    const size = b.rows.reduce((n, row) => n + Buffer.byteLength(row), 0);
    if (current.length > 0 && (rows + b.rows.length > maxRows || bytes + size > maxBytes)) {
      packs.push(current);
      current = [];
      rows = 0;
      bytes = 0;
    }
    current.push(b);
    rows += b.rows.length;
    bytes += size;
  }
  if (current.length > 0) packs.push(current);
  return packs;
}

/** What the group protocol needs from its flusher. */
export interface GroupDeps {
  redis: RedisClient;
  owner: string;
  shardKeys(shard: number): ShardKeys;
  inserter: Inserter;
  faults?: Faults | undefined;
  /** Inserts and acknowledges one batch on its own. */
  flushPlain(stream: FlushStream, batch: Batch): Promise<number>;
  /** Acknowledges one batch; rows inserted, 0 when it was acknowledged already. */
  ack(stream: FlushStream, batch: Batch): Promise<number>;
}

export class Groups {
  constructor(private readonly d: GroupDeps) {}

  /** One step of a group insert on one batch's shard (lua/flushGroup-2.lua). */
  async step(stream: FlushStream, batch: GroupBatch, mode: GroupMode, token: string, list = ''): Promise<{ done: boolean; batches?: string }> {
    const sk = this.d.shardKeys(batch.shard);
    return flushGroup(this.d.redis, { meta: stream.keys(sk).meta, lease: sk.lease }, { mode, batchId: batch.id, token, owner: this.d.owner, batches: list });
  }

  /** Asks the leader whether the group was committed: its final batch list, or null (the group is then aborted for good). */
  async resolve(stream: FlushStream, token: string, leader: GroupBatch): Promise<GroupBatch[] | null> {
    const { done, batches } = await this.step(stream, leader, 'resolve', token);
    return done && batches !== undefined ? parseBatchList(batches) : null;
  }

  /** A group's batch as it is now: null when it was acknowledged (or replaced by a later batch) or left the group. */
  private async readBatch(stream: FlushStream, batch: GroupBatch, token: string): Promise<Batch | null> {
    const k = stream.keys(this.d.shardKeys(batch.shard));
    const replies = (await this.d.redis.multi().hmget(k.meta, 'id', 'group').lrange(k.batch, 0, -1).exec()) ?? [];
    const failed = replies.find(([err]) => err);
    if (failed) throw failed[0] as Error;
    const [id, group] = (replies[0]?.[1] ?? []) as (string | null)[];
    if (id !== batch.id || group !== token) return null;
    return { ...batch, rows: (replies[1]?.[1] ?? []) as string[] };
  }

  /** Acknowledges a group's batches, non-leaders first and the leader last (see lua/flushGroup-2.lua). */
  private async ackAll(stream: FlushStream, batches: readonly Batch[]): Promise<number> {
    const [leader, ...rest] = batches as [Batch, ...Batch[]];
    const acked = await Promise.all(rest.map((b) => this.d.ack(stream, b)));
    return acked.reduce((a, n) => a + n, 0) + (await this.d.ack(stream, leader));
  }

  /** Forms a group of several shards' batches under a new token, commits it on the leader and inserts it. */
  async start(stream: FlushStream, pack: readonly Batch[]): Promise<number> {
    const token = `g-${ulid()}`;
    const [leader, ...rest] = pack as [Batch, ...Batch[]];
    const intended = batchList(pack);
    const joined = (await Promise.all(rest.map(async (b) => ((await this.step(stream, b, 'join', token, intended)).done ? b : null)))).filter(
      (b): b is Batch => b !== null,
    );
    if (joined.length === 0) return this.d.flushPlain(stream, leader);
    const batches = [leader, ...joined];
    if (!(await this.step(stream, leader, 'commit', token, batchList(batches))).done) {
      // this flusher lost a lease and a recoverer aborted the group: the batches go as plain ones next round
      await Promise.all(joined.map((b) => this.step(stream, b, 'leave', token)));
      return 0;
    }
    return this.insertCommitted(stream, token, batches);
  }

  /**
   * A committed group found unfinished (its flusher crashed or failed): when
   * every batch is still there, the same rows go in again under the same
   * token (ClickHouse keeps one copy); when a batch was acknowledged, the
   * insert was confirmed and the rest are acknowledged, unless the group was
   * split meanwhile, in which case each remaining batch goes on its own.
   */
  async finish(stream: FlushStream, token: string, refs: readonly GroupBatch[]): Promise<number> {
    const current = await Promise.all(refs.map((m) => this.readBatch(stream, m, token)));
    const present = current.filter((b): b is Batch => b !== null);
    if (present.length === refs.length) return this.insertCommitted(stream, token, present);
    if (present.length === 0) return 0;
    if (await this.resolve(stream, token, refs[0] as GroupBatch)) return this.ackAll(stream, present);
    let rows = 0;
    for (const b of present) {
      await this.step(stream, b, 'leave', token);
      rows += await this.d.flushPlain(stream, b);
    }
    return rows;
  }

  /** Inserts a committed group and acknowledges it; when ClickHouse rejects its rows, splits it into plain batches. */
  private async insertCommitted(stream: FlushStream, token: string, batches: readonly Batch[]): Promise<number> {
    try {
      await this.d.inserter.insertWithRetry(
        stream.table,
        token,
        batches.flatMap((b) => b.rows),
      );
    } catch (err) {
      if (!(err instanceof ClickHouseWriteError) || err.retryable) throw err;
      const [leader, ...rest] = batches as [Batch, ...Batch[]];
      await this.step(stream, leader, 'split', token);
      await Promise.all(rest.map((b) => this.step(stream, b, 'leave', token)));
      let rows = 0;
      for (const b of batches) rows += await this.d.flushPlain(stream, b);
      return rows;
    }
    this.d.faults?.afterInsert();
    return this.ackAll(stream, batches);
  }
}
