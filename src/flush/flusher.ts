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
 * Group inserts: the new batches of one round, across all shards this
 * flusher leases, go to ClickHouse as one insert (up to flushMaxRows rows),
 * because every insert costs chDB ~35 ms of CPU whatever its size (events
 * and its views). The group is fixed in Redis before the insert, exactly as a
 * batch is: each member batch records the group's token, and the leader's
 * record is the commit point, so a crashed group is found again, with the
 * same rows and the same token, from any of its members
 * (lua/flushGroup-2.lua has the protocol). A batch claimed before (it may
 * have been inserted on its own) is never put into a group.
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
import { newUlid as ulid } from '../event/ulid.js';
import type { ClickHouse } from '../clickhouse/client.js';
import { backoffMs, classifyClickHouseError, ClickHouseWriteError } from '../errors.js';
import type { ShardKeys } from '../buffer/keys.js';
import type { SessionBuffer } from '../buffer/session-buffer.js';
import { expectArray, scripts, ScriptCode } from '../buffer/scripts.js';
import type { Faults } from '../ops/faults.js';
import type { Metrics } from '../ops/metrics.js';
import type { Config } from '../config.js';
import type { RedisClient } from '../ops/redis.js';

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
  /** The row exactly as it was sent to ClickHouse (what a redrive puts back; entries of 0.1 lack it). */
  text?: string;
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

/** A shard's batch in one stream: rows fixed under an id until acknowledged. */
interface Batch {
  shard: number;
  id: string;
  rows: string[];
}

/** A batch named in a group's member list. */
interface Member {
  shard: number;
  id: string;
}

/** A batch's group, as its meta records it (see lua/flushGroup-2.lua). */
interface GroupRef {
  token: string;
  /** Leader first. */
  members: Member[];
}

/** Outcome of one claim: nothing to do, another owner's shard, or a batch to insert. */
type Claim = { kind: 'empty' } | { kind: 'held' } | ({ kind: 'batch'; again: boolean; group?: GroupRef } & Batch);

const memberList = (members: readonly Member[]): string => members.map((m) => `${m.shard}:${m.id}`).join(',');

function parseMembers(list: string): Member[] {
  return list.split(',').map((entry) => {
    const colon = entry.indexOf(':');
    return { shard: Number(entry.slice(0, colon)), id: entry.slice(colon + 1) };
  });
}

/** Classifies an insert failure (kept for callers of the flusher's API; the table is in errors.ts). */
export const classifyInsertError = classifyClickHouseError;

/**
 * A batch of at least this many rows whose every row fails alone is a systemic
 * failure (a schema change, a setting), not that many bad rows: it is retried,
 * not dead-lettered.
 */
export const SYSTEMIC_MIN_ROWS = 8;

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

export class Flusher {
  private readonly lastFlushAt = new Map<number, number>();
  /** Batches and groups this flusher found unfinished and finished (a crashed or expired flusher's work). */
  readonly recovered = { batches: 0, groups: 0 };
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
    const [status, id, ...rest] = expectArray(scripts.claimBatch, reply) as [number, string, ...string[]];
    if (status === 0) return { kind: 'empty' };
    if (status === 3) {
      const [token, list, ...rows] = rest as [string, string, ...string[]];
      return { kind: 'batch', shard, id, rows, again: true, group: { token, members: parseMembers(list) } };
    }
    return { kind: 'batch', shard, id, rows: rest, again: status === 1 };
  }

  /** One step of a group insert on one member's shard (lua/flushGroup-2.lua). */
  private async groupStep(stream: FlushStream, member: Member, mode: 'join' | 'commit' | 'resolve' | 'leave' | 'split', token: string, list = ''): Promise<unknown[]> {
    const sk = this.buffer.shardKeys(member.shard);
    const reply = await scripts.flushGroup.run(this.redis, [stream.keys(sk).meta, sk.lease], [mode, member.id, token, this.options.owner, list]);
    return expectArray(scripts.flushGroup, reply);
  }

  /** Asks the leader whether the group was committed: its final member list, or null (the group is then aborted for good). */
  private async resolve(stream: FlushStream, token: string, leader: Member): Promise<Member[] | null> {
    const [committed, list] = await this.groupStep(stream, leader, 'resolve', token);
    return committed === 1 ? parseMembers(list as string) : null;
  }

  /** A member's batch as it is now: null when it was acknowledged (or replaced by a later batch) or left the group. */
  private async readMember(stream: FlushStream, member: Member, token: string): Promise<Batch | null> {
    const k = stream.keys(this.buffer.shardKeys(member.shard));
    const replies = (await this.redis.multi().hmget(k.meta, 'id', 'group').lrange(k.batch, 0, -1).exec()) ?? [];
    const failed = replies.find(([err]) => err);
    if (failed) throw failed[0] as Error;
    const [id, group] = (replies[0]?.[1] ?? []) as (string | null)[];
    if (id !== member.id || group !== token) return null;
    return { ...member, rows: (replies[1]?.[1] ?? []) as string[] };
  }

  /** Inserts one batch of event rows (or of `table`'s rows) with its dedup token. */
  async insert(id: string, rows: readonly string[], table = `${this.ch.database}.events`): Promise<void> {
    this.options.faults?.beforeInsert();
    try {
      const result = await this.ch.client.exec({
        query: `INSERT INTO ${table} FORMAT JSONEachRow`,
        values: Readable.from([Buffer.from((this.options.faults?.outgoing(rows) ?? rows).join('\n'), 'utf8')], { objectMode: false }),
        clickhouse_settings: { insert_deduplication_token: id },
      });
      result.stream.resume();
    } catch (err) {
      throw classifyClickHouseError(err);
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

  /**
   * Inserts the rows; rows ClickHouse rejects as bad data are isolated by
   * bisection and returned as dead letters. When every row of a batch of
   * SYSTEMIC_MIN_ROWS or more fails alone, the cause is not the rows: a
   * retryable error is thrown and nothing is dead-lettered.
   */
  private async insertOrIsolate(table: string, token: string, rows: readonly string[]): Promise<DeadLetter[]> {
    const dead = await this.bisect(table, token, rows);
    if (rows.length >= SYSTEMIC_MIN_ROWS && dead.length === rows.length) {
      throw new ClickHouseWriteError(
        `insert failed: every one of the ${rows.length} rows was rejected on its own (${dead[0]?.error.slice(0, 300)}); treated as systemic and retried, not dead-lettered`,
        true,
      );
    }
    return dead;
  }

  private async bisect(table: string, token: string, rows: readonly string[]): Promise<DeadLetter[]> {
    try {
      await this.insertWithRetry(table, token, rows);
      return [];
    } catch (err) {
      if (!(err instanceof ClickHouseWriteError) || err.retryable) throw err;
      if (rows.length === 1) return [{ error: err.message, row: parseRow(rows[0] as string), text: rows[0] as string }];
      const half = Math.ceil(rows.length / 2);
      const left = await this.bisect(table, `${token}/a`, rows.slice(0, half));
      const right = await this.bisect(table, `${token}/b`, rows.slice(half));
      return [...left, ...right];
    }
  }

  /** One claim → insert → ack round on each stream of a shard: event rows and sessions rows inserted (0 when idle or leased elsewhere). */
  async flushShard(shard: number): Promise<{ rows: number; sessions: number }> {
    const [events, sessions] = this.streams as [FlushStream, FlushStream];
    const rows = (await this.round(events, [shard])).rows;
    const sessionRows = (await this.round(sessions, [shard])).rows;
    this.lastFlushAt.set(shard, Date.now());
    return { rows, sessions: sessionRows };
  }

  /**
   * One round on a stream: claims a batch on each shard, finishes the groups
   * found unfinished, inserts batches left from earlier rounds on their own,
   * and packs the new batches into groups of up to flushMaxRows rows /
   * flushMaxBytes bytes: one insert for many shards.
   */
  private async round(stream: FlushStream, shards: readonly number[]): Promise<{ rows: number; batches: number; claimed: number[] }> {
    const claims = await Promise.all(shards.map((shard) => this.claim(shard, stream)));
    shards.forEach((shard, i) => this.options.metrics?.leaseOwned.set({ shard: String(shard) }, claims[i]?.kind === 'held' ? 0 : 1));
    const batches = claims.filter((c): c is Extract<Claim, { kind: 'batch' }> => c.kind === 'batch');
    // only batches fixed by this very claim may join a group: a batch claimed
    // before may have been inserted on its own, under its own id as the token
    const fresh: Batch[] = [];
    const alone: Batch[] = [];
    const unfinished = new Map<string, Member[]>();
    for (const b of batches) {
      if (!b.group) {
        (b.again ? alone : fresh).push({ shard: b.shard, id: b.id, rows: b.rows });
        continue;
      }
      const { token, members } = b.group;
      const leader = members[0] as Member;
      // a leader carries its group only once the group is committed
      const committed = leader.shard === b.shard && leader.id === b.id ? members : (unfinished.get(token) ?? (await this.resolve(stream, token, leader)));
      if (committed) {
        unfinished.set(token, committed);
      } else {
        await this.groupStep(stream, b, 'leave', token);
        alone.push({ shard: b.shard, id: b.id, rows: b.rows });
      }
    }
    let rows = 0;
    this.recovered.batches += alone.length;
    this.recovered.groups += unfinished.size;
    for (const [token, members] of unfinished) rows += await this.finishGroup(stream, token, members);
    for (const b of alone) rows += await this.flushPlain(stream, b);
    for (const pack of packBatches(fresh, this.options.flushMaxRows, this.options.flushMaxBytes)) rows += pack.length === 1 ? await this.flushPlain(stream, pack[0] as Batch) : await this.startGroup(stream, pack);
    return { rows, batches: batches.length, claimed: batches.map((b) => b.shard) };
  }



  /** A batch on its own: inserted with its id as the token (bad rows isolated), then acknowledged. */
  private async flushPlain(stream: FlushStream, batch: Batch): Promise<number> {
    const dead = await this.insertOrIsolate(stream.table, batch.id, batch.rows);
    this.options.faults?.afterInsert();
    return this.ack(stream, batch, dead);
  }

  /** Acknowledges a batch (its dead letters moved in the same call): rows inserted, 0 when it was acknowledged already. */
  private async ack(stream: FlushStream, batch: Batch, dead: readonly DeadLetter[] = []): Promise<number> {
    const sk = this.buffer.shardKeys(batch.shard);
    const k = stream.keys(sk);
    const acked = await scripts.ackBatch.run(this.redis, [k.batch, k.meta, sk.stats, k.dead], [batch.id, ...dead.map((d) => JSON.stringify(d))]);
    // BATCH_MISMATCH: another flusher acknowledged the same batch (same token) first
    if (acked === ScriptCode.BATCH_MISMATCH) return 0;
    const inserted = batch.rows.length - dead.length;
    this.options.metrics?.rowsFlushed.inc(inserted);
    this.options.metrics?.deadLetters.inc(dead.length);
    return inserted;
  }

  /** Acknowledges a group's batches, non-leaders first and the leader last (see lua/flushGroup-2.lua). */
  private async ackGroup(stream: FlushStream, members: readonly Batch[]): Promise<number> {
    const [leader, ...rest] = members as [Batch, ...Batch[]];
    const acked = await Promise.all(rest.map((b) => this.ack(stream, b)));
    return acked.reduce((a, n) => a + n, 0) + (await this.ack(stream, leader));
  }

  /** Forms a group of several shards' batches under a new token, commits it on the leader and inserts it. */
  private async startGroup(stream: FlushStream, pack: readonly Batch[]): Promise<number> {
    const token = `g-${ulid()}`;
    const [leader, ...rest] = pack as [Batch, ...Batch[]];
    const intended = memberList(pack);
    const joined = (await Promise.all(rest.map(async (b) => ((await this.groupStep(stream, b, 'join', token, intended))[0] === 1 ? b : null)))).filter(
      (b): b is Batch => b !== null,
    );
    if (joined.length === 0) return this.flushPlain(stream, leader);
    const members = [leader, ...joined];
    if ((await this.groupStep(stream, leader, 'commit', token, memberList(members)))[0] !== 1) {
      // this flusher lost a lease and a recoverer aborted the group: the batches go as plain ones next round
      await Promise.all(joined.map((b) => this.groupStep(stream, b, 'leave', token)));
      return 0;
    }
    return this.insertGroup(stream, token, members);
  }

  /**
   * A committed group found unfinished (its flusher crashed or failed): when
   * every member is still there, the same rows go in again under the same
   * token (ClickHouse keeps one copy); when a member was acknowledged, the
   * insert was confirmed and the rest are acknowledged, unless the group was
   * split meanwhile, in which case each remaining batch goes on its own.
   */
  private async finishGroup(stream: FlushStream, token: string, refs: readonly Member[]): Promise<number> {
    const current = await Promise.all(refs.map((m) => this.readMember(stream, m, token)));
    const present = current.filter((b): b is Batch => b !== null);
    if (present.length === refs.length) return this.insertGroup(stream, token, present);
    if (present.length === 0) return 0;
    if (await this.resolve(stream, token, refs[0] as Member)) return this.ackGroup(stream, present);
    let rows = 0;
    for (const b of present) {
      await this.groupStep(stream, b, 'leave', token);
      rows += await this.flushPlain(stream, b);
    }
    return rows;
  }

  /** Inserts a committed group and acknowledges it; when ClickHouse rejects its rows, splits it into plain batches. */
  private async insertGroup(stream: FlushStream, token: string, members: readonly Batch[]): Promise<number> {
    try {
      await this.insertWithRetry(
        stream.table,
        token,
        members.flatMap((b) => b.rows),
      );
    } catch (err) {
      if (!(err instanceof ClickHouseWriteError) || err.retryable) throw err;
      const [leader, ...rest] = members as [Batch, ...Batch[]];
      await this.groupStep(stream, leader, 'split', token);
      await Promise.all(rest.map((b) => this.groupStep(stream, b, 'leave', token)));
      let rows = 0;
      for (const b of members) rows += await this.flushPlain(stream, b);
      return rows;
    }
    this.options.faults?.afterInsert();
    return this.ackGroup(stream, members);
  }

  /**
   * Flushes each shard that has a full batch, an unacknowledged batch, or
   * (mode `due`, the worker's) rows waiting flushIntervalMs since its last
   * flush, all due shards together in as few inserts as flushMaxRows allows.
   * Mode `full` inserts full batches only, the fewest and largest inserts,
   * for offline replays. `force` repeats until every backlog is empty.
   * `batches` counts the shard batches claimed.
   */
  async tick(force = false, mode: 'due' | 'full' = 'due'): Promise<FlushResult> {
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
    for (const [i, stream] of this.streams.entries()) {
      let shards = due;
      while (shards.length > 0) {
        const r = await this.round(stream, shards);
        if (i === 0) total.rows += r.rows;
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
