/**
 * The session buffer: holds each session's screen_view and session_end events
 * in Redis until their durations are settled, then emits finished rows into a
 * per-shard ready list (DESIGN §2). All state changes happen inside the Lua
 * scripts; this class groups events by shard, builds keys, and reads state.
 *
 * States of a held row (see lua/includes/session.lua for the keys):
 *
 *   held-unsettled --(next boundary or idle gap arrives)--> held-settled(emitAt = now + grace)
 *   held-settled  --(an arrival changes its scan)--> held-settled(emitAt = now + grace) | held-unsettled
 *   held-*        --(sweep: emitAt <= now, or session finalised)--> emitted (row in ready)
 *
 * States of a session: open (has a last arrival, meta `la`) --(sweep: now >= last arrival + timeout,
 * or >= session_end arrival + grace)--> finalised (ids and kinds only, TTL =
 * dedupWindowMs) --(any new arrival)--> open again; late rows get their
 * duration from the events still known.
 *
 * Crash: every transition is one script call, so a process killed at any
 * instant leaves Redis in a state before or after a call, never between;
 * whoever sweeps next continues. Shutdown: nothing is finalised early; held
 * sessions stay for the other replicas (or the next start).
 */
import type { BufferSettings } from '../config.js';
import { finishedRow, parsePayload } from '../event/columns.js';
import type { NormalizedEvent } from '../event/normalize.js';
import { BufferKeys, sessionMember, shardOf, type ShardKeys } from './keys.js';
import { expectArray, scripts } from './scripts.js';
import type { RedisClient } from '../ops/redis.js';

export interface IngestResult {
  accepted: number;
  duplicates: number;
  late: number;
}

export interface SweepResult {
  emitted: number;
  finalised: number;
}

/** One held or remembered event of a session, as the live view shows it. */
export interface HeldEventView {
  id: string;
  createdAt: string;
  kind: 'screen_view' | 'session_end' | 'other';
  state: 'unsettled' | 'settled' | 'emitted';
  /** Buffer time at which a settled row will be emitted. */
  emitAt?: string;
  name?: string;
  path?: string;
}

export interface SessionView {
  projectId: string;
  sessionId: string;
  shard: number;
  state: 'open' | 'finalised' | 'unknown';
  lastArrivalAt?: string;
  sessionEndArrivalAt?: string;
  heldRows: number;
  events: HeldEventView[];
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

interface ShardGroup {
  sessions: Map<string, NormalizedEvent[]>;
  sessionless: NormalizedEvent[];
}

const SWEEP_PAGE = 256;

/** The metadata names in lua/includes/session.lua's META order (its field '#m'). */
const META = ['la', 'lt', 'lm', 'lb', 'lbt', 'ee', 'ea', 'em', 'st', 'sm', 's', 'ept', 'epm', 'ep', 'xpt', 'xpm', 'xp', 'tt', 'pk'] as const;

/** A session hash's metadata by name ('' and absent values left out); earlier releases kept each under '#' + name. */
export function sessionMeta(h: Readonly<Record<string, string>>): Partial<Record<(typeof META)[number], string>> {
  const out: Partial<Record<(typeof META)[number], string>> = {};
  const packed = h['#m']?.split('\x1f');
  META.forEach((name, i) => {
    const value = packed === undefined ? h[`#${name}`] : packed[i];
    if (value) out[name] = value;
  });
  return out;
}


/** A held event's value in its session hash: the state ('V' screen_view, 'E' session_end), then the payload. */
const heldValue = (e: NormalizedEvent): string => (e.kind === 'v' ? 'V' : 'E') + e.payload;

const iso = (ms: number): string => new Date(ms).toISOString();

export class SessionBuffer {
  readonly keys: BufferKeys;

  constructor(
    private readonly redis: RedisClient,
    readonly settings: BufferSettings,
  ) {
    this.keys = new BufferKeys(settings.keyPrefix);
  }

  /** The four timing arguments every buffer script shares (ARGV[2..5]). */
  private timing(): number[] {
    const s = this.settings;
    return [s.graceMs, s.sessionTimeoutMs, s.dedupWindowMs, s.bufferTtlMs];
  }

  shardOfEvent(event: Pick<NormalizedEvent, 'projectId' | 'sessionId' | 'id'>): number {
    return shardOf(event.projectId, event.sessionId || event.id, this.settings.bufferShards);
  }

  /** Adds events, one script call per shard (calls to different shards run concurrently). */
  async ingest(events: readonly NormalizedEvent[], nowMs: number): Promise<IngestResult> {
    const groups = new Map<number, ShardGroup>();
    for (const event of events) {
      const shard = this.shardOfEvent(event);
      let group = groups.get(shard);
      if (!group) {
        group = { sessions: new Map(), sessionless: [] };
        groups.set(shard, group);
      }
      if (event.sessionId === '') {
        group.sessionless.push(event);
        continue;
      }
      const member = sessionMember(event.projectId, event.sessionId);
      const list = group.sessions.get(member);
      if (list) list.push(event);
      else group.sessions.set(member, [event]);
    }
    const results = await Promise.all([...groups].map(([shard, group]) => this.ingestShard(shard, group, nowMs)));
    return results.reduce(
      (acc, r) => ({ accepted: acc.accepted + r.accepted, duplicates: acc.duplicates + r.duplicates, late: acc.late + r.late }),
      { accepted: 0, duplicates: 0, late: 0 },
    );
  }

  private async ingestShard(shard: number, group: ShardGroup, nowMs: number): Promise<IngestResult> {
    const sk = this.keys.shard(shard);
    const keys = [sk.due, sk.ready, sk.stats, sk.seen];
    const args: (string | number)[] = [nowMs, ...this.timing(), group.sessions.size, group.sessionless.length];
    for (const [member, list] of group.sessions) {
      const k = this.keys.session(shard, member);
      keys.push(k.z, k.h, k.p);
      // in (createdAt, id) order, so each event settles its predecessor once
      list.sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const first = list[0] as NormalizedEvent;
      args.push(member, list.length, first.createdAtMs, `${first.id}\t${first.kind}`, JSON.stringify({ id: first.sessionId, ...first.sessionFacts }));
      for (const e of list) args.push(e.id, e.createdAtMs, e.kind, e.kind === 'o' ? finishedRow(e.payload) : heldValue(e), e.kind === 'v' ? JSON.stringify(e.path) : '');
    }
    for (const e of group.sessionless) args.push(sessionMember(e.projectId, e.id), finishedRow(e.payload));
    const [accepted, duplicates, late] = expectArray(scripts.ingest, await scripts.ingest.run(this.redis, keys, args)) as number[];
    return { accepted: accepted ?? 0, duplicates: duplicates ?? 0, late: late ?? 0 };
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
      const keys = [sk.due, sk.ready, sk.stats, sk.sessionsReady];
      for (const m of members) {
        const k = this.keys.session(shard, m);
        keys.push(k.z, k.h, k.p);
      }
      const reply = await scripts.sweep.run(this.redis, keys, [nowMs, ...this.timing(), members.length, ...members]);
      const [emitted, finalised] = expectArray(scripts.sweep, reply) as number[];
      total.emitted += emitted ?? 0;
      total.finalised += finalised ?? 0;
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

  /** The live view of one session: its held events and their state (read-only). */
  async sessionView(projectId: string, sessionId: string): Promise<SessionView> {
    const shard = shardOf(projectId, sessionId, this.settings.bufferShards);
    const member = sessionMember(projectId, sessionId);
    const k = this.keys.session(shard, member);
    const [zr, hr, pr] = (await this.redis
      .pipeline()
      .zrange(k.z, '0', '-1', 'WITHSCORES')
      .hgetall(k.h)
      .zrange(k.p, '0', '-1', 'WITHSCORES')
      .exec()) ?? [];
    const z = (zr?.[1] ?? []) as string[];
    const h = (hr?.[1] ?? {}) as Record<string, string>;
    const p = (pr?.[1] ?? []) as string[];
    const emitAt = new Map<string, string>();
    for (let i = 0; i < p.length; i += 2) emitAt.set(p[i] as string, p[i + 1] as string);
    const events: HeldEventView[] = [];
    for (let i = 0; i < z.length; i += 2) {
      const member = z[i] as string;
      const tab = member.lastIndexOf('\t');
      const id = member.slice(0, tab);
      const kind = member.slice(tab + 1);
      const view: HeldEventView = {
        id,
        createdAt: iso(Number(z[i + 1])),
        kind: kind === 'v' ? 'screen_view' : kind === 'e' ? 'session_end' : 'other',
        state: 'emitted',
      };
      // held: the state 'V' / 'E' and the payload in one field (or, from earlier releases, the payload under `>id`)
      const value = h[id] ?? '';
      const payload = value.length > 1 ? value.slice(1) : h[`>${id}`];
      if (payload !== undefined) {
        const at = emitAt.get(member);
        view.state = at === undefined || at === 'inf' ? 'unsettled' : 'settled';
        if (at !== undefined && at !== 'inf') view.emitAt = iso(Number(at));
        const row = parsePayload(payload) as { name?: string; path?: string };
        view.name = row.name;
        if (row.path) view.path = row.path;
      }
      events.push(view);
    }
    const meta = sessionMeta(h);
    const la = meta.la;
    const ea = meta.ea;
    const result: SessionView = {
      projectId,
      sessionId,
      shard,
      state: la !== undefined ? 'open' : z.length > 0 ? 'finalised' : 'unknown',
      heldRows: p.length / 2,
      events,
    };
    if (la !== undefined) result.lastArrivalAt = iso(Number(la));
    if (ea !== undefined) result.sessionEndArrivalAt = iso(Number(ea));
    return result;
  }

  /** The session of a live-view argument `<projectId>/<sessionId>` (split at the first slash). */
  static parseSessionArg(arg: string): { projectId: string; sessionId: string } {
    const slash = arg.indexOf('/');
    if (slash <= 0 || slash === arg.length - 1) {
      throw new Error(`--session ${JSON.stringify(arg)}: expected <projectId>/<sessionId>`);
    }
    return { projectId: arg.slice(0, slash), sessionId: arg.slice(slash + 1) };
  }
}

