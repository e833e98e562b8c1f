/**
 * The session buffer: holds each session's screen_view and session_end events
 * in Redis until their durations are settled, then emits finished rows into a
 * per-shard ready list (DESIGN §2). All state changes happen inside the Lua
 * scripts; this class groups events by shard, builds keys, and reads state.
 *
 * A session is three keys (lua/includes/state.lua): a sorted set of every
 * known event in (createdAt, id) order, a sorted set of its held rows by emit
 * time, and a hash of its state, facts and held payloads. States of a held row:
 *
 *   held-unsettled --(next boundary or idle gap arrives)--> held-settled(emitAt = now + grace)
 *   held-settled  --(an arrival changes its scan)--> held-settled(emitAt = now + grace) | held-unsettled
 *   held-*        --(sweep: emitAt <= now, or session finalised)--> emitted (row in ready)
 *
 * States of a session: open (its state has a last arrival) --(sweep: now >= last arrival + timeout,
 * or >= session_end arrival + grace)--> finalised (order set and state only, TTL =
 * dedupWindowMs) --(any new arrival)--> open again; late rows get their
 * duration from the events still known.
 *
 * Crash: every transition is one script call, so a process killed at any
 * instant leaves Redis in a state before or after a call, never between;
 * whoever sweeps next continues. Shutdown: nothing is finalised early; held
 * sessions stay for the other replicas (or the next start).
 */
import type { BufferSettings } from '../config.js';
import { compareEvents } from './durations.js';
import { finishedRow, heldPayload } from '../event/columns.js';
import { isHeldKind, type NormalizedEvent } from '../event/normalize.js';
import { BufferKeys, sessionMember, shardOf, type ShardKeys } from './keys.js';
import { sessionView, type SessionView } from './inspect.js';
export type { HeldEventView, SessionView } from './inspect.js';
import { ingest, sweep, type EventStatus, type IngestEvent, type IngestSession } from './scripts.js';
import type { RedisClient } from '../ops/redis.js';

export interface IngestResult {
  accepted: number;
  duplicates: number;
  late: number;
}

/** The counts of a list of event statuses. */
export function tally(statuses: readonly EventStatus[]): IngestResult {
  const r = { accepted: 0, duplicates: 0, late: 0 };
  for (const s of statuses) {
    if (s === 'duplicate') r.duplicates += 1;
    else {
      r.accepted += 1;
      if (s === 'late') r.late += 1;
    }
  }
  return r;
}

export interface SweepResult {
  emitted: number;
  finalised: number;
}

export interface ShardBacklog {
  shard: number;
  /** Event and sessions rows waiting in the ready lists. */
  ready: number;
  /** Event and sessions rows in unacknowledged batches. */
  inBatch: number;
  heldSessions: number;
  dead: number;
  /** Buffer time at which the shard's earliest session is due for a sweep, or null. */
  nextDueAt: number | null;
}

/** An event of an ingest call and its position in the caller's list (where its status goes). */
interface Placed {
  event: NormalizedEvent;
  at: number;
}

interface ShardGroup {
  sessions: Map<string, Placed[]>;
  sessionless: Placed[];
}

const SWEEP_PAGE = 256;

/** An event as the ingest script takes it: a held one's payload, or the finished row of any other. */
function ingestEvent(e: NormalizedEvent): IngestEvent {
  const event: IngestEvent = { id: e.id, createdAtMs: e.createdAtMs, kind: e.kind, data: isHeldKind(e.kind) ? heldPayload(e.payload) : finishedRow(e.payload), path: e.kind === 'v' ? JSON.stringify(e.path) : '' };
  if (e.sliceMs !== undefined) event.sliceMs = e.sliceMs;
  return event;
}

export class SessionBuffer {
  readonly keys: BufferKeys;

  constructor(
    /** The client the buffer uses (the worker also reads the queue's active jobs with it). */
    readonly redis: RedisClient,
    readonly settings: BufferSettings,
  ) {
    this.keys = new BufferKeys(settings.keyPrefix);
  }

  shardOfEvent(event: Pick<NormalizedEvent, 'projectId' | 'sessionId' | 'id'>): number {
    return shardOf(event.projectId, event.sessionId || event.id, this.settings.bufferShards);
  }

  /** Adds events, one script call per shard (calls to different shards run concurrently). */
  async ingest(events: readonly NormalizedEvent[], nowMs: number): Promise<IngestResult> {
    return tally(await this.ingestEach(events, nowMs));
  }

  /** Adds events like ingest(), and says what became of each one, in the order given. */
  async ingestEach(events: readonly NormalizedEvent[], nowMs: number): Promise<EventStatus[]> {
    const groups = new Map<number, ShardGroup>();
    events.forEach((event, at) => {
      const shard = this.shardOfEvent(event);
      let group = groups.get(shard);
      if (!group) {
        group = { sessions: new Map(), sessionless: [] };
        groups.set(shard, group);
      }
      if (event.sessionId === '') {
        group.sessionless.push({ event, at });
        return;
      }
      const member = sessionMember(event.projectId, event.sessionId);
      const list = group.sessions.get(member);
      if (list) list.push({ event, at });
      else group.sessions.set(member, [{ event, at }]);
    });
    const statuses = new Array<EventStatus>(events.length);
    await Promise.all([...groups].map(([shard, group]) => this.ingestShard(shard, group, nowMs, statuses)));
    return statuses;
  }

  /** One shard's call; writes each event's status at its position in `statuses`. */
  private async ingestShard(shard: number, group: ShardGroup, nowMs: number, statuses: EventStatus[]): Promise<void> {
    const sk = this.keys.shard(shard);
    const sessions: IngestSession[] = [];
    const order: Placed[] = [];
    for (const [member, list] of group.sessions) {
      // in (createdAt, id) order, so each event settles its predecessor once
      list.sort(({ event: a }, { event: b }) => compareEvents(a, b));
      const first = (list[0] as Placed).event;
      sessions.push({
        member,
        keys: this.keys.session(shard, member),
        facts: { createdAtMs: first.createdAtMs, member: `${first.id}\t${first.kind}`, json: JSON.stringify({ id: first.sessionId, ...first.sessionFacts }) },
        events: list.map(({ event: e }) => ingestEvent(e)),
      });
      order.push(...list);
    }
    const sessionless = group.sessionless.map(({ event: e }) => ({ member: sessionMember(e.projectId, e.id), row: finishedRow(e.payload) }));
    order.push(...group.sessionless);
    const reply = await ingest(this.redis, sk, { nowMs, timing: this.settings, sessions, sessionless });
    // the statuses come in argument order: the sessions' (sorted) events, then the sessionless ones
    order.forEach((p, i) => {
      statuses[p.at] = reply.statuses[i] as EventStatus;
    });
  }

  /** Emits due rows and finalises ended or idle sessions in every shard. */
  async sweep(nowMs: number): Promise<SweepResult> {
    const shards = Array.from({ length: this.settings.bufferShards }, (_, i) => i);
    const results = await Promise.all(shards.map((shard) => this.sweepShard(shard, nowMs)));
    return results.reduce((a, r) => ({ emitted: a.emitted + r.emitted, finalised: a.finalised + r.finalised }), {
      emitted: 0,
      finalised: 0,
    });
  }

  async sweepShard(shard: number, nowMs: number): Promise<SweepResult> {
    const sk = this.keys.shard(shard);
    const total: SweepResult = { emitted: 0, finalised: 0 };
    for (;;) {
      const members = await this.redis.zrangebyscore(sk.due, '-inf', nowMs, 'LIMIT', 0, SWEEP_PAGE);
      if (members.length === 0) break;
      const { emitted, finalised } = await sweep(this.redis, sk, { nowMs, timing: this.settings, sessions: members.map((m) => ({ member: m, keys: this.keys.session(shard, m) })) });
      total.emitted += emitted;
      total.finalised += finalised;
      // every swept session is rescheduled after now or removed, so a short page means done
      if (members.length < SWEEP_PAGE) break;
    }
    return total;
  }

  shardKeys(shard: number): ShardKeys {
    return this.keys.shard(shard);
  }

  /** Per shard: rows in the ready list and in the unacknowledged batch, held sessions, dead letters, and the earliest due time. */
  async backlog(): Promise<ShardBacklog[]> {
    // one pipeline per shard: a shard's keys share a hash tag, so this also works on a cluster
    return Promise.all(
      Array.from({ length: this.settings.bufferShards }, async (_, shard) => {
        const sk = this.keys.shard(shard);
        const replies =
          (await this.redis
            .pipeline()
            .llen(sk.ready)
            .llen(sk.batch)
            .zcard(sk.due)
            .llen(sk.dead)
            .zrange(sk.due, '0', '0', 'WITHSCORES')
            .llen(sk.sessionsReady)
            .llen(sk.sessionsBatch)
            .llen(sk.sessionsDead)
            .exec()) ?? [];
        const failed = replies.find(([err]) => err);
        if (failed) throw failed[0] as Error;
        const value = (i: number): number => Number(replies[i]?.[1] ?? 0);
        const first = (replies[4]?.[1] ?? []) as string[];
        return {
          shard,
          ready: value(0) + value(5),
          inBatch: value(1) + value(6),
          heldSessions: value(2),
          dead: value(3) + value(7),
          nextDueAt: first[1] === undefined ? null : Number(first[1]),
        };
      }),
    );
  }

  /** Shard counters summed over all shards. */
  async stats(): Promise<Record<string, number>> {
    const replies = await Promise.all(Array.from({ length: this.settings.bufferShards }, (_, shard) => this.redis.hgetall(this.keys.shard(shard).stats)));
    const out: Record<string, number> = {};
    for (const reply of replies) for (const [k, v] of Object.entries(reply)) out[k] = (out[k] ?? 0) + Number(v);
    return out;
  }

  /** The live view of one session: its held events and their state (read-only; buffer/inspect.ts). */
  sessionView(projectId: string, sessionId: string): Promise<SessionView> {
    return sessionView(this.redis, this.keys, this.settings.bufferShards, projectId, sessionId);
  }
}

