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
 * Crash between insert and ack: the batch stays in Redis with its id; the next
 * claim (this process after restart, or another once the lease expires)
 * re-inserts it with the same token and ClickHouse drops the copy. Crash
 * before insert: the same. Shutdown: `release()` gives the leases up so
 * another flusher need not wait for them to expire.
 *
 * A failed insert is retried with jittered exponential backoff when the error
 * is retryable (the batch stays in Redis meanwhile; after maxAttempts the error
 * is raised and the next tick tries again). When ClickHouse rejects the data
 * itself, the batch is bisected (deterministically, so the sub-batches keep
 * stable tokens `<id>/a`, `<id>/a/b`, …) until the rejected rows are isolated;
 * those go to the shard's dead-letter list with the server's message, in the
 * same call that acknowledges the rest. A poison row never blocks its shard.
 */
import { Readable } from 'node:stream';
import { ulid } from 'ulid';
import type { ClickHouse } from '../clickhouse/client.ts';
import { backoffMs, ClickHouseWriteError, isRetryable } from '../errors.ts';
import type { ShardKeys } from '../buffer/keys.ts';
import type { SessionBuffer } from '../buffer/session-buffer.ts';
import { expectArray, scripts, ScriptCode } from '../buffer/scripts.ts';
import type { Faults } from '../ops/faults.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { Config } from '../config.ts';
import type { RedisClient } from '../ops/redis.ts';

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

/** A row ClickHouse rejected, as stored in the dead-letter list. */
export interface DeadLetter {
  error: string;
  row: unknown;
}

export interface FlushResult {
  /** Event rows inserted. */
  rows: number;
  /** Sessions rows inserted. */
  sessions: number;
  batches: number;
}

/** One kind of row and the keys and table it flows through. */
interface FlushStream {
  table: string;
  keys(sk: ShardKeys): { ready: string; batch: string; meta: string; dead: string };
}

/** Outcome of one claim: nothing to do, another owner's shard, or a batch to insert. */
type Claim = { kind: 'empty' } | { kind: 'held' } | { kind: 'batch'; id: string; rows: string[]; again: boolean };

const CH_RETRYABLE_TYPES = new Set([
  'TIMEOUT_EXCEEDED',
  'TOO_MANY_PARTS',
  'TOO_MANY_SIMULTANEOUS_QUERIES',
  'MEMORY_LIMIT_EXCEEDED',
  'NETWORK_ERROR',
  'SOCKET_TIMEOUT',
  'ALL_CONNECTION_TRIES_FAILED',
  'TABLE_IS_READ_ONLY',
  'KEEPER_EXCEPTION',
]);

/** Classifies an insert failure: network trouble and overload are retryable, bad data is not. */
export function classifyInsertError(err: unknown): ClickHouseWriteError {
  const type = (err as { type?: unknown }).type;
  const retryable = typeof type === 'string' ? CH_RETRYABLE_TYPES.has(type) : isRetryable(err);
  const message = err instanceof Error ? err.message : String(err);
  return new ClickHouseWriteError(`insert failed: ${message.slice(0, 500)}`, retryable, { cause: err });
}

export class Flusher {
  private readonly lastFlushAt = new Map<number, number>();
  private readonly streams: readonly FlushStream[];

  constructor(
    private readonly redis: RedisClient,
    private readonly buffer: SessionBuffer,
    private readonly ch: ClickHouse,
    private readonly options: FlusherOptions,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    this.streams = [
      { table: `${ch.database}.events`, keys: (sk) => ({ ready: sk.ready, batch: sk.batch, meta: sk.batchMeta, dead: sk.dead }) },
      {
        table: `${ch.database}.sessions`,
        keys: (sk) => ({ ready: sk.sessionsReady, batch: sk.sessionsBatch, meta: sk.sessionsBatchMeta, dead: sk.sessionsDead }),
      },
    ];
  }

  private async claim(shard: number, stream: FlushStream): Promise<Claim> {
    const sk = this.buffer.shardKeys(shard);
    const k = stream.keys(sk);
    const o = this.options;
    const reply = await scripts.claimBatch.run(
      this.redis,
      [k.ready, k.batch, k.meta, sk.lease],
      [o.owner, o.leaseMs, ulid(), o.flushMaxRows, o.flushMaxBytes],
    );
    if (reply === ScriptCode.LEASE_HELD) return { kind: 'held' };
    const [status, id, ...rows] = expectArray(scripts.claimBatch, reply) as [number, string, ...string[]];
    if (status === 0) return { kind: 'empty' };
    return { kind: 'batch', id, rows, again: status === 1 };
  }

  /** Inserts one batch of event rows (or of `table`'s rows) with its dedup token. */
  async insert(id: string, rows: readonly string[], table = `${this.ch.database}.events`): Promise<void> {
    this.options.faults?.beforeInsert();
    try {
      const result = await this.ch.client.exec({
        query: `INSERT INTO ${table} FORMAT JSONEachRow`,
        values: Readable.from([Buffer.from(rows.join('\n'), 'utf8')], { objectMode: false }),
        clickhouse_settings: { insert_deduplication_token: id },
      });
      result.stream.resume();
    } catch (err) {
      throw classifyInsertError(err);
    }
  }

  /** Inserts with backoff on retryable errors; raises the last error after maxAttempts. */
  private async insertWithRetry(table: string, token: string, rows: readonly string[]): Promise<void> {
    const metrics = this.options.metrics;
    for (let attempt = 0; ; attempt += 1) {
      const started = performance.now();
      try {
        await this.insert(token, rows, table);
        metrics?.insertSeconds.observe((performance.now() - started) / 1000);
        this.options.onInserted?.(table, rows);
        return;
      } catch (err) {
        const retryable = err instanceof ClickHouseWriteError && err.retryable;
        metrics?.insertErrors.inc({ retryable: String(retryable) });
        if (!retryable || attempt + 1 >= (this.options.maxAttempts ?? 8)) throw err;
        await this.sleep(backoffMs(attempt));
      }
    }
  }

  /** Inserts the rows; rows ClickHouse rejects are isolated by bisection and returned as dead letters. */
  private async insertOrIsolate(table: string, token: string, rows: readonly string[]): Promise<DeadLetter[]> {
    try {
      await this.insertWithRetry(table, token, rows);
      return [];
    } catch (err) {
      if (!(err instanceof ClickHouseWriteError) || err.retryable) throw err;
      if (rows.length === 1) return [{ error: err.message, row: parseRow(rows[0] as string) }];
      const half = Math.ceil(rows.length / 2);
      const left = await this.insertOrIsolate(table, `${token}/a`, rows.slice(0, half));
      const right = await this.insertOrIsolate(table, `${token}/b`, rows.slice(half));
      return [...left, ...right];
    }
  }

  /** One claim → insert → ack round on each stream of a shard: event rows and sessions rows inserted (0 when idle or leased elsewhere). */
  async flushShard(shard: number): Promise<{ rows: number; sessions: number }> {
    const [events, sessions] = this.streams;
    const rows = events ? await this.flushStream(shard, events) : 0;
    const sessionRows = sessions ? await this.flushStream(shard, sessions) : 0;
    this.lastFlushAt.set(shard, Date.now());
    return { rows, sessions: sessionRows };
  }

  private async flushStream(shard: number, stream: FlushStream): Promise<number> {
    const claim = await this.claim(shard, stream);
    this.options.metrics?.leaseOwned.set({ shard: String(shard) }, claim.kind === 'held' ? 0 : 1);
    if (claim.kind !== 'batch') return 0;
    const dead = await this.insertOrIsolate(stream.table, claim.id, claim.rows);
    this.options.faults?.afterInsert();
    const sk = this.buffer.shardKeys(shard);
    const k = stream.keys(sk);
    const acked = await scripts.ackBatch.run(this.redis, [k.batch, k.meta, sk.stats, k.dead], [claim.id, ...dead.map((d) => JSON.stringify(d))]);
    // BATCH_MISMATCH: another flusher acknowledged the same batch (same token) first
    if (acked === ScriptCode.BATCH_MISMATCH) return 0;
    const inserted = claim.rows.length - dead.length;
    this.options.metrics?.rowsFlushed.inc(inserted);
    this.options.metrics?.deadLetters.inc(dead.length);
    return inserted;
  }

  /**
   * Flushes each shard that has a full batch, an unacknowledged batch, or
   * (mode `due`, the worker's) rows waiting flushIntervalMs since its last
   * flush. Mode `full` inserts full batches only, the fewest and largest
   * inserts, for offline replays. `force` flushes every shard until its
   * backlog is empty.
   */
  async tick(force = false, mode: 'due' | 'full' = 'due'): Promise<FlushResult> {
    const backlog = await this.buffer.backlog();
    const now = Date.now();
    const due = backlog.filter((b) => {
      if (b.inBatch > 0) return true;
      if (b.ready === 0) return false;
      if (force || b.ready >= this.options.flushMaxRows) return true;
      return mode === 'due' && now - (this.lastFlushAt.get(b.shard) ?? 0) >= this.options.flushIntervalMs;
    });
    const results = await Promise.all(
      due.map(async ({ shard }) => {
        const total: FlushResult = { rows: 0, sessions: 0, batches: 0 };
        do {
          const n = await this.flushShard(shard);
          if (n.rows + n.sessions === 0) break;
          total.rows += n.rows;
          total.sessions += n.sessions;
          total.batches += 1;
        } while (force);
        return total;
      }),
    );
    return results.reduce((a, r) => ({ rows: a.rows + r.rows, sessions: a.sessions + r.sessions, batches: a.batches + r.batches }), {
      rows: 0,
      sessions: 0,
      batches: 0,
    });
  }

  /** Gives up this flusher's leases (on shutdown), so other flushers take over at once. */
  async release(): Promise<void> {
    for (let shard = 0; shard < this.buffer.settings.bufferShards; shard += 1) {
      await scripts.releaseLease.run(this.redis, [this.buffer.shardKeys(shard).lease], [this.options.owner]);
    }
  }
}

function parseRow(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
