/**
 * Read-only views of the session buffer for operators (`event-lens status
 * --session`): a session's known events from its order set, with the state of
 * each held row from its hash. Nothing here writes to Redis.
 */
import { decode } from '@msgpack/msgpack';
import { parsePayload } from '../event/columns.js';
import type { RedisClient } from '../ops/redis.js';
import { sessionMember, shardOf, type BufferKeys } from './keys.js';

/**
 * The names of a session's state fields, in lua/includes/state.lua's STATE
 * order: its field '#state' is one MessagePack array of these values (false
 * for none).
 */
export const SESSION_STATE = [
  'lastArrival', 'lastT', 'lastMember', 'tailBoundary', 'tailBoundaryT', 'tailHeld', 'endMember', 'endArrival', 'emittedUpTo',
  'factsT', 'factsMember', 'entryT', 'entryMember', 'entryPath', 'exitT', 'exitMember', 'exitPath', 'ttlSetAt', 'views',
] as const;
export type SessionStateField = (typeof SESSION_STATE)[number];

/** A session's packed state by name (values that are false, meaning none, left out). */
export function sessionState(packed: Buffer | undefined): Partial<Record<SessionStateField, string | number | true>> {
  const fields: Partial<Record<SessionStateField, string | number | true>> = {};
  if (packed === undefined) return fields;
  const values = decode(packed) as unknown[];
  SESSION_STATE.forEach((name, i) => {
    const v = values[i];
    if (typeof v === 'string' || typeof v === 'number' || v === true) fields[name] = v;
  });
  return fields;
}

/** A held row of a session: its member ("<id>\t<kind>") and emit time (null while not settled). */
export interface HeldRow {
  member: string;
  emitAtMs: number | null;
}

/**
 * A session's held rows (lua/includes/held.lua): the settled ones from its
 * sorted set p, as ZRANGE … WITHSCORES returns them (emit order), then the
 * unsettled one, its tail screen_view, when the state holds it.
 */
export function heldRows(withScores: readonly string[], state: Partial<Record<SessionStateField, string | number | true>> = {}): HeldRow[] {
  const out: HeldRow[] = [];
  for (let i = 0; i + 1 < withScores.length; i += 2) out.push({ member: withScores[i] as string, emitAtMs: Number(withScores[i + 1]) });
  const tail = state.tailBoundary;
  if (state.tailHeld === true && typeof tail === 'string' && tail.endsWith('\tv')) out.push({ member: tail, emitAtMs: null });
  return out;
}

/** A session's order set as ZRANGE … WITHSCORES returns it: its events in (createdAt, id) order. */
export function orderedEvents(withScores: readonly string[]): { id: string; kind: string; createdAtMs: number }[] {
  const out: { id: string; kind: string; createdAtMs: number }[] = [];
  for (let i = 0; i + 1 < withScores.length; i += 2) {
    const member = withScores[i] as string;
    out.push({ id: member.slice(0, -2), kind: member.slice(-1), createdAtMs: Number(withScores[i + 1]) });
  }
  return out;
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

const iso = (ms: number): string => new Date(ms).toISOString();
const KIND_NAMES: Record<string, HeldEventView['kind']> = { v: 'screen_view', e: 'session_end' };

/** The live view of one session: every event its order set knows, the held ones with their state and payload's name and path. */
export async function sessionView(redis: RedisClient, keys: BufferKeys, shards: number, projectId: string, sessionId: string): Promise<SessionView> {
  const shard = shardOf(projectId, sessionId, shards);
  const k = keys.session(shard, sessionMember(projectId, sessionId));
  // a session's keys share a hash tag: one pipeline works on a cluster too
  const replies = (await redis.pipeline().hgetallBuffer(k.h).zrange(k.z, '0', '-1', 'WITHSCORES').zrange(k.p, '0', '-1', 'WITHSCORES').exec()) ?? [];
  const failed = replies.find(([err]) => err);
  if (failed) throw failed[0] as Error;
  const hash = (replies[0]?.[1] ?? {}) as Record<string, Buffer>;
  const fields = sessionState(hash['#state']);
  const held = heldRows((replies[2]?.[1] ?? []) as string[], fields);
  const heldBy = new Map(held.map((r) => [r.member, r]));
  const events = orderedEvents((replies[1]?.[1] ?? []) as string[]).map((e): HeldEventView => {
    const view: HeldEventView = { id: e.id, createdAt: iso(e.createdAtMs), kind: KIND_NAMES[e.kind] ?? 'other', state: 'emitted' };
    const row = heldBy.get(`${e.id}\t${e.kind}`);
    if (!row) return view;
    view.state = row.emitAtMs === null ? 'unsettled' : 'settled';
    if (row.emitAtMs !== null) view.emitAt = iso(row.emitAtMs);
    const payload = hash[`${e.id}\t${e.kind}`];
    if (payload !== undefined) {
      const columns = parsePayload(payload.toString('utf8')) as { name?: string; path?: string };
      view.name = columns.name;
      if (columns.path) view.path = columns.path;
    }
    return view;
  });
  const result: SessionView = {
    projectId,
    sessionId,
    shard,
    state: fields.lastArrival !== undefined ? 'open' : events.length > 0 ? 'finalised' : 'unknown',
    heldRows: held.length,
    events,
  };
  if (fields.lastArrival !== undefined) result.lastArrivalAt = iso(Number(fields.lastArrival));
  if (fields.endArrival !== undefined) result.sessionEndArrivalAt = iso(Number(fields.endArrival));
  return result;
}

/** The session of a live-view argument `<projectId>/<sessionId>` (split at the first slash). */
export function parseSessionArg(arg: string): { projectId: string; sessionId: string } {
  const slash = arg.indexOf('/');
  if (slash <= 0 || slash === arg.length - 1) {
    throw new Error(`--session ${JSON.stringify(arg)}: expected <projectId>/<sessionId>`);
  }
  return { projectId: arg.slice(0, slash), sessionId: arg.slice(slash + 1) };
}
