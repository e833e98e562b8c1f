/**
 * The flusher: moves ready rows from Redis into ClickHouse, exactly once.
 * Each shard has two streams, event rows (table `events`) and sessions rows
 * (table `sessions`, written when a session is finalised); both go through
 * the same claim → insert → ack path under the shard's one lease.
 *
 * Per shard:  idle --claimBatch--> batch fixed (id, rows) --insert--> inserted --ackBatch--> idle
 *
 * - claimBatch takes the shard's lease and either returns the unacknowledged
 *   batch again (same id) or fixes a new one from the ready list.
 * - The insert carries `insert_deduplication_token = <batch id>`, so inserting
 *   the same batch twice stores it once (the table keeps a dedup window).
 * - ackBatch deletes the batch only after ClickHouse confirmed the insert.
 *
 * Group inserts (group.ts): the new batches of one round, across all shards
 * this flusher leases, go to ClickHouse as one insert, fixed in Redis before
 * the insert as a batch is. Inserting, retrying and isolating bad rows is
 * insert.ts. This file chooses the shards and runs the rounds.
 *
 * Crash between insert and ack: the batch stays in Redis with its id; the next
 * claim (this process after restart, or another once the lease expires)
 * re-inserts it with the same token and ClickHouse drops the copy. Crash
 * before insert: the same. Shutdown: `release()` gives the leases up so
 * another flusher need not wait for them to expire.
 *
 * A failed insert is retried when the error is retryable (the batch stays in
 * Redis; after maxAttempts the next tick tries again); rows ClickHouse rejects
 * as bad data go to the shard's dead-letter list in the same call that
 * acknowledges the rest. A poison row never blocks its shard.
 */
import type { RowStream, ShardKeys } from '../buffer/keys.js';
import { ackBatch, claimBatch, releaseLease } from '../buffer/scripts.js';
import type { ClickHouse } from '../clickhouse/client.js';
import type { Config } from '../config.js';
import { newUlid as ulid } from '../event/ulid.js';
import type { Faults } from '../ops/faults.js';
import type { Metrics } from '../ops/metrics.js';
import type { RedisClient } from '../ops/redis.js';
import { Groups, packBatches, parseBatchList, type Batch, type FlushStream, type GroupRef, type GroupBatch } from './group.js';
import { Inserter, type DeadLetter } from './insert.js';

export { SYSTEMIC_MIN_ROWS, type DeadLetter } from './insert.js';
export { packBatches } from './group.js';

/** What the flusher reads from the buffer: the shard keys, the shard count and the backlog. */
export interface FlushSource {
  readonly settings: { readonly bufferShards: number };
  shardKeys(shard: number): ShardKeys;
  backlog(): Promise<readonly { shard: number; ready: number; inBatch: number }[]>;
}

export interface FlusherOptions {
  /** Unique id of this flusher (lease owner). */
  owner: string;
  /** Lease time to live; renewed on every claim. */
  leaseMs: number;
  flushMaxRows: number;
  flushMaxBytes: number;
  flushIntervalMs: number;
  /** Attempts per batch before the error is raised (retryable errors only). */
  maxAttempts?: number;
  metrics?: Metrics;
  /** Called once ClickHouse has confirmed an insert (the rows are visible to queries); for benchmarks and tests. */
  onInserted?: (table: string, rows: readonly string[]) => void;
  /** Fault hooks of the chaos suite (EVENT_LENS_FAULTS); never set in production. */
  faults?: Faults;
}

/** Flusher options from the config, for one owner (and optional metrics). */
export function flusherOptions(
  config: Pick<Config, 'leaseMs' | 'flushMaxRows' | 'flushMaxBytes' | 'flushIntervalMs'>,
  owner: string,
  metrics?: Metrics,
): FlusherOptions {
  return {
    owner,
    leaseMs: config.leaseMs,
    flushMaxRows: config.flushMaxRows,
    flushMaxBytes: config.flushMaxBytes,
    flushIntervalMs: config.flushIntervalMs,
    ...(metrics ? { metrics } : {}),
  };
}

export interface FlushResult {
  /** Event rows inserted. */
  rows: number;
  /** Sessions rows inserted. */
  sessions: number;
  batches: number;
}

/** Outcome of one claim: nothing to do, another owner's shard, or a batch to insert. */
type Claim = { kind: 'empty' } | { kind: 'held' } | ({ kind: 'batch'; again: boolean; group?: GroupRef } & Batch);

export class Flusher {
  private readonly lastFlushAt = new Map<number, number>();
  /** Batches and groups this flusher found unfinished and finished (a crashed or expired flusher's work). */
  readonly recovered = { batches: 0, groups: 0 };
  private readonly streams: Readonly<Record<RowStream, FlushStream>>;
  private readonly inserter: Inserter;
  private readonly groups: Groups;
  /** The end of the last round this flusher started: rounds of one flusher take turns (see turn()). */
  private lastTurn: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly redis: RedisClient,
    private readonly buffer: FlushSource,
    private readonly ch: ClickHouse,
    private readonly options: FlusherOptions,
    sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    this.streams = {
      events: { table: `${ch.database}.events`, keys: (sk) => ({ ready: sk.ready, batch: sk.batch, meta: sk.batchMeta, dead: sk.dead }) },
      sessions: {
        table: `${ch.database}.sessions`,
        keys: (sk) => ({ ready: sk.sessionsReady, batch: sk.sessionsBatch, meta: sk.sessionsBatchMeta, dead: sk.sessionsDead }),
      },
    };
    this.inserter = new Inserter(ch, options, sleep);
    this.groups = new Groups({
      redis,
      owner: options.owner,
      shardKeys: (shard) => buffer.shardKeys(shard),
      inserter: this.inserter,
      faults: options.faults,
      flushPlain: (stream, batch) => this.flushPlain(stream, batch),
      ack: (stream, batch) => this.ack(stream, batch),
    });
  }

  /** Inserts one batch of event rows (or of `table`'s rows) with its dedup token, once (no retry): for tests that act as a dying flusher. */
  insert(id: string, rows: readonly string[], table = `${this.ch.database}.events`): Promise<void> {
    return this.inserter.insert(id, rows, table);
  }

  private async claim(shard: number, stream: FlushStream, maxRows: number): Promise<Claim> {
    const sk = this.buffer.shardKeys(shard);
    const k = stream.keys(sk);
    const o = this.options;
    const reply = await claimBatch(this.redis, { ready: k.ready, batch: k.batch, meta: k.meta, lease: sk.lease }, { owner: o.owner, leaseMs: o.leaseMs, newId: ulid(), maxRows, maxBytes: o.flushMaxBytes });
    switch (reply.status) {
      case 'held':
        return { kind: 'held' };
      case 'empty':
        return { kind: 'empty' };
      case 'group':
        return { kind: 'batch', shard, id: reply.id, rows: reply.rows, again: true, group: { token: reply.token, batches: parseBatchList(reply.batches) } };
      default:
        return { kind: 'batch', shard, id: reply.id, rows: reply.rows, again: reply.status === 'again' };
    }
  }

  /**
   * Runs `work` after every round this flusher started before it. Its rounds
   * hold the same lease, so a second one running alongside would get the
   * first one's fresh batches back as unacknowledged and insert them on their
   * own, under their own ids, while the first inserts them in a group under
   * the group's token: every row twice. Flushers of different owners are
   * kept apart by the lease.
   */
  private turn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.lastTurn.then(work, work);
    this.lastTurn = result.catch(() => {});
    return result;
  }

  /** One claim → insert → ack round on each stream of a shard: event rows and sessions rows inserted (0 when idle or leased elsewhere). */
  flushShard(shard: number): Promise<{ rows: number; sessions: number }> {
    return this.turn(() => this.flushShardNow(shard));
  }

  private async flushShardNow(shard: number): Promise<{ rows: number; sessions: number }> {
    const rows = (await this.round(this.streams.events, [shard])).rows;
    const sessionRows = (await this.round(this.streams.sessions, [shard])).rows;
    this.lastFlushAt.set(shard, Date.now());
    return { rows, sessions: sessionRows };
  }

  /**
   * One round on a stream: claims a batch on each shard, finishes the groups
   * found unfinished, inserts batches left from earlier rounds on their own,
   * and packs the new batches into groups of up to flushMaxRows rows /
   * flushMaxBytes bytes: one insert for many shards.
   */
  private async round(stream: FlushStream, shards: readonly number[], maxRows = this.options.flushMaxRows): Promise<{ rows: number; batches: number; claimed: number[] }> {
    const claims = await Promise.all(shards.map((shard) => this.claim(shard, stream, maxRows)));
    shards.forEach((shard, i) => this.options.metrics?.leaseOwned.set({ shard: String(shard) }, claims[i]?.kind === 'held' ? 0 : 1));
    const batches = claims.filter((c): c is Extract<Claim, { kind: 'batch' }> => c.kind === 'batch');
    // only batches fixed by this very claim may join a group: a batch claimed
    // before may have been inserted on its own, under its own id as the token
    const fresh: Batch[] = [];
    const alone: Batch[] = [];
    const unfinished = new Map<string, GroupBatch[]>();
    for (const b of batches) {
      if (!b.group) {
        (b.again ? alone : fresh).push({ shard: b.shard, id: b.id, rows: b.rows });
        continue;
      }
      const { token, batches } = b.group;
      const leader = batches[0] as GroupBatch;
      // a leader carries its group only once the group is committed
      const committed = leader.shard === b.shard && leader.id === b.id ? batches : (unfinished.get(token) ?? (await this.groups.resolve(stream, token, leader)));
      if (committed) {
        unfinished.set(token, committed);
      } else {
        await this.groups.step(stream, b, 'leave', token);
        alone.push({ shard: b.shard, id: b.id, rows: b.rows });
      }
    }
    let rows = 0;
    this.recovered.batches += alone.length;
    this.recovered.groups += unfinished.size;
    for (const [token, batches] of unfinished) rows += await this.groups.finish(stream, token, batches);
    for (const b of alone) rows += await this.flushPlain(stream, b);
    for (const pack of packBatches(fresh, this.options.flushMaxRows, this.options.flushMaxBytes)) rows += pack.length === 1 ? await this.flushPlain(stream, pack[0] as Batch) : await this.groups.start(stream, pack);
    return { rows, batches: batches.length, claimed: batches.map((b) => b.shard) };
  }



  /** A batch on its own: inserted with its id as the token (bad rows isolated), then acknowledged. */
  private async flushPlain(stream: FlushStream, batch: Batch): Promise<number> {
    const dead = await this.inserter.insertOrIsolate(stream.table, batch.id, batch.rows);
    this.options.faults?.afterInsert();
    return this.ack(stream, batch, dead);
  }

  /** Acknowledges a batch (its dead letters moved in the same call): rows inserted, 0 when it was acknowledged already. */
  private async ack(stream: FlushStream, batch: Batch, dead: readonly DeadLetter[] = []): Promise<number> {
    const sk = this.buffer.shardKeys(batch.shard);
    const k = stream.keys(sk);
    const acked = await ackBatch(this.redis, { batch: k.batch, meta: k.meta, stats: sk.stats, dead: k.dead }, { batchId: batch.id, deadLetters: dead.map((d) => JSON.stringify(d)) });
    // null (BATCH_MISMATCH): another flusher acknowledged the same batch (same token) first
    if (acked === null) return 0;
    const inserted = batch.rows.length - dead.length;
    this.options.metrics?.rowsFlushed.inc(inserted);
    this.options.metrics?.deadLetters.inc(dead.length);
    return inserted;
  }

  /**
   * Flushes each shard that has a full batch, an unacknowledged batch, or
   * (mode `due`, the worker's) rows waiting flushIntervalMs since its last
   * flush, all due shards together in as few inserts as flushMaxRows allows.
   * Mode `full` inserts full batches only, the fewest and largest inserts,
   * for offline replays. `force` repeats until every backlog is empty.
   * `batches` counts the shard batches claimed.
   */
  tick(force = false, mode: 'due' | 'full' = 'due'): Promise<FlushResult> {
    return this.turn(() => this.tickNow(force, mode));
  }

  private async tickNow(force: boolean, mode: 'due' | 'full'): Promise<FlushResult> {
    const backlog = await this.buffer.backlog();
    const now = Date.now();
    const due = backlog
      .filter((b) => {
        if (b.inBatch > 0) return true;
        if (b.ready === 0) return false;
        if (force || b.ready >= this.options.flushMaxRows) return true;
        return mode === 'due' && now - (this.lastFlushAt.get(b.shard) ?? 0) >= this.options.flushIntervalMs;
      })
      .map((b) => b.shard);
    const total: FlushResult = { rows: 0, sessions: 0, batches: 0 };
    for (const kind of ['events', 'sessions'] as const) {
      let shards = due;
      while (shards.length > 0) {
        // draining (force): each shard's batch is its share of one insert, so the round's
        // batches fill inserts of flushMaxRows instead of one smaller insert per shard (rounded
        // down: shares rounded up add up to more than one insert holds, which splits the round)
        const r = await this.round(this.streams[kind], shards, force ? Math.max(1, Math.floor(this.options.flushMaxRows / shards.length)) : this.options.flushMaxRows);
        if (kind === 'events') total.rows += r.rows;
        else total.sessions += r.rows;
        total.batches += r.batches;
        if (!force) break;
        shards = r.claimed;
      }
    }
    for (const shard of due) this.lastFlushAt.set(shard, Date.now());
    return total;
  }

  /** Gives up this flusher's leases (on shutdown), so other flushers take over at once. */
  async release(): Promise<void> {
    for (let shard = 0; shard < this.buffer.settings.bufferShards; shard += 1) {
      await releaseLease(this.redis, { lease: this.buffer.shardKeys(shard).lease }, { owner: this.options.owner });
    }
  }
}
