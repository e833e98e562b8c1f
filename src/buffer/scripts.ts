/**
 * Loads lua/*.lua and calls them through typed wrappers, one per script
 * below, each owning its script's KEYS / ARGV layout (documented in the
 * script's header, which test/unit/buffer/lua-headers.test.ts lints) and
 * checking its reply, so no call site builds arguments or casts replies. A file is named
 * `<name>-<fixed key count>.lua` (BullMQ's convention); ingest and sweep take
 * three more keys per session (z, p, h) after their fixed ones. `--- @include "x"`
 * lines are replaced by lua/includes/x.lua, so helpers are written once.
 *
 * Scripts run with EVALSHA; when Redis answers NOSCRIPT (after a restart,
 * a failover or SCRIPT FLUSH) the call is repeated once with EVAL, which also
 * caches the script again. Negative answers are the codes in `ScriptCode`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScriptError } from '../errors.js';
import type { RedisClient } from '../ops/redis.js';
import type { EventKind } from '../event/normalize.js';
import type { SessionKeys } from './keys.js';

/** Negative return codes of the scripts (see each script's header). */
export const ScriptCode = {
  ARGS_MISMATCH: -1,
  BATCH_MISMATCH: -2,
  LEASE_HELD: -3,
} as const;

const LUA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../lua');

function resolveIncludes(source: string, seen: Set<string>): string {
  return source.replace(/^--- @include "([\w-]+)"$/gm, (_line, name: string) => {
    if (seen.has(name)) return '';
    seen.add(name);
    return resolveIncludes(readFileSync(path.join(LUA_DIR, 'includes', `${name}.lua`), 'utf8'), seen);
  });
}

/** Receives the duration of every script call (the worker feeds a histogram with it). */
export type ScriptObserver = (script: string, seconds: number) => void;
let observer: ScriptObserver | undefined;

/** Sets the process-wide observer of script durations (metrics). */
export function observeScripts(fn: ScriptObserver | undefined): void {
  observer = fn;
}

export class LuaScript {
  readonly source: string;
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly fixedKeys: number,
    source: string,
  ) {
    this.source = resolveIncludes(source, new Set());
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  /** Runs the script; retries once with EVAL when the script cache was emptied. */
  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const started = performance.now();
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return await redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw new ScriptError(this.name, err instanceof Error ? err.message : String(err), { cause: err });
    } finally {
      observer?.(this.name, (performance.now() - started) / 1000);
    }
  }
}

/** Loads lua/<file>; `file` may sit in a subfolder (lua/bench/ holds the benchmark's reference scripts). */
export function loadScript(file: string): LuaScript {
  const match = /([A-Za-z]+)-(\d+)\.lua$/.exec(file);
  if (!match) throw new Error(`lua/${file}: expected a name of the form camelCase-<numKeys>.lua`);
  return new LuaScript(match[1] as string, Number(match[2]), readFileSync(path.join(LUA_DIR, file), 'utf8'));
}

/** The scripts, loaded once per process. */
export const scripts = {
  ingest: loadScript('ingest-4.lua'),
  sweep: loadScript('sweep-4.lua'),
  claimBatch: loadScript('claimBatch-4.lua'),
  ackBatch: loadScript('ackBatch-4.lua'),
  flushGroup: loadScript('flushGroup-2.lua'),
  releaseLease: loadScript('releaseLease-1.lua'),
  intakeSessions: loadScript('intakeSessions-0.lua'),
  redriveDead: loadScript('redriveDead-3.lua'),
} as const;

/** The timing values the buffer scripts share (ARGV[2..5] of ingest and sweep), ms. */
export interface Timing {
  graceMs: number;
  sessionTimeoutMs: number;
  dedupWindowMs: number;
  bufferTtlMs: number;
}

const timingArgs = (t: Timing): number[] => [t.graceMs, t.sessionTimeoutMs, t.dedupWindowMs, t.bufferTtlMs];

/** A reply that must be an array of `n` integers (or more). */
function integers(script: LuaScript, reply: unknown, n: number): number[] {
  const values = expectArray(script, reply);
  if (values.length < n || values.slice(0, n).some((v) => typeof v !== 'number')) throw new ScriptError(script.name, `unexpected reply ${JSON.stringify(reply)}`);
  return values as number[];
}

/** An event's member in its session's order set (lua/includes/base.lua): `<id>\t<kind>`, or `<id>\t<slice ms><kind>` for a visibility event with a client-measured engaged slice. */
export function eventMember(id: string, kind: string, sliceMs?: number): string {
  return sliceMs === undefined ? `${id}\t${kind}` : `${id}\t${sliceMs}${kind}`;
}

/** One event of an ingest call. `data`: the payload of a held event, or the finished row of any other. */
export interface IngestEvent {
  id: string;
  createdAtMs: number;
  kind: EventKind;
  /** A visibility event's client-measured engaged slice, ms (lua/includes/base.lua: it is part of the member). */
  sliceMs?: number;
  data: string;
  /** The page path as a JSON string for a screen_view (sent for screen_views only). */
  path: string;
}

export interface IngestSession {
  member: string;
  keys: SessionKeys;
  /** The session facts of its earliest event in this call: createdAt, member ("<id>\t<kind>") and the JSON object. */
  facts: { createdAtMs: number; member: string; json: string };
  /** In (createdAt, id) order. */
  events: readonly IngestEvent[];
}

/** What became of one event: accepted, accepted and late (O2), or a duplicate (O3). */
export type EventStatus = 'accepted' | 'late' | 'duplicate';
const EVENT_STATUS = { a: 'accepted', l: 'late', d: 'duplicate' } as const;

export interface IngestReply {
  accepted: number;
  duplicates: number;
  late: number;
  /** One per event, sessions' events first (in the order given), then the sessionless ones. */
  statuses: EventStatus[];
}

/** lua/ingest-4.lua: one shard's events of one call. */
export async function ingest(
  redis: RedisClient,
  keys: { due: string; ready: string; stats: string; seen: string },
  args: { nowMs: number; timing: Timing; sessions: readonly IngestSession[]; sessionless: readonly { member: string; row: string }[] },
): Promise<IngestReply> {
  const k: string[] = [keys.due, keys.ready, keys.stats, keys.seen];
  const a: (string | number)[] = [args.nowMs, ...timingArgs(args.timing), args.sessions.length, args.sessionless.length];
  for (const s of args.sessions) {
    k.push(s.keys.z, s.keys.p, s.keys.h);
    a.push(s.member, s.events.length, s.facts.createdAtMs, s.facts.member, s.facts.json);
    for (const e of s.events) {
      a.push(eventMember(e.id, e.kind, e.sliceMs), e.createdAtMs, e.data);
      if (e.kind === 'v') a.push(e.path);
    }
  }
  for (const e of args.sessionless) a.push(e.member, e.row);
  const reply = await scripts.ingest.run(redis, k, a);
  const [accepted, duplicates, late] = integers(scripts.ingest, reply, 3) as [number, number, number];
  const text = (reply as unknown[])[3];
  const count = args.sessions.reduce((n, s) => n + s.events.length, 0) + args.sessionless.length;
  if (typeof text !== 'string' || text.length !== count) throw new ScriptError('ingest', `expected ${count} event statuses, got ${JSON.stringify(text)}`);
  return { accepted, duplicates, late, statuses: Array.from(text, (c) => EVENT_STATUS[c as keyof typeof EVENT_STATUS]) };
}

/** lua/sweep-4.lua: emits due rows and finalises ended sessions among the given members. */
export async function sweep(
  redis: RedisClient,
  keys: { due: string; ready: string; stats: string; sessionsReady: string },
  args: { nowMs: number; timing: Timing; sessions: readonly { member: string; keys: SessionKeys }[] },
): Promise<{ emitted: number; finalised: number }> {
  const k: string[] = [keys.due, keys.ready, keys.stats, keys.sessionsReady];
  for (const s of args.sessions) k.push(s.keys.z, s.keys.p, s.keys.h);
  const reply = await scripts.sweep.run(redis, k, [args.nowMs, ...timingArgs(args.timing), args.sessions.length, ...args.sessions.map((s) => s.member)]);
  const [emitted, finalised] = integers(scripts.sweep, reply, 2) as [number, number];
  return { emitted, finalised };
}

/** claimBatch's statuses (lua/claimBatch-4.lua). */
export const ClaimStatus = { EMPTY: 0, AGAIN: 1, NEW: 2, GROUP: 3 } as const;

export type ClaimReply =
  | { status: 'held' }
  | { status: 'empty' }
  | { status: 'again' | 'new'; id: string; rows: string[] }
  | { status: 'group'; id: string; token: string; batches: string; rows: string[] };

/** lua/claimBatch-4.lua: takes the shard's lease and returns its batch. */
export async function claimBatch(
  redis: RedisClient,
  keys: { ready: string; batch: string; meta: string; lease: string },
  args: { owner: string; leaseMs: number; newId: string; maxRows: number; maxBytes: number },
): Promise<ClaimReply> {
  const reply = await scripts.claimBatch.run(redis, [keys.ready, keys.batch, keys.meta, keys.lease], [args.owner, args.leaseMs, args.newId, args.maxRows, args.maxBytes]);
  if (reply === ScriptCode.LEASE_HELD) return { status: 'held' };
  const [status, id, ...rest] = expectArray(scripts.claimBatch, reply);
  if (status === ClaimStatus.EMPTY) return { status: 'empty' };
  if (typeof id !== 'string' || rest.some((r) => typeof r !== 'string')) throw new ScriptError('claimBatch', `unexpected reply ${JSON.stringify(reply).slice(0, 200)}`);
  const strings = rest as string[];
  if (status === ClaimStatus.GROUP) {
    const [token, batches, ...rows] = strings as [string, string, ...string[]];
    return { status: 'group', id, token, batches, rows };
  }
  if (status === ClaimStatus.AGAIN) return { status: 'again', id, rows: strings };
  if (status === ClaimStatus.NEW) return { status: 'new', id, rows: strings };
  throw new ScriptError('claimBatch', `unexpected status ${JSON.stringify(status)}`);
}

/** lua/ackBatch-4.lua: rows acknowledged, or null when no batch has this id (BATCH_MISMATCH: acknowledged already, or replaced). */
export async function ackBatch(
  redis: RedisClient,
  keys: { batch: string; meta: string; stats: string; dead: string },
  args: { batchId: string; deadLetters: readonly string[] },
): Promise<number | null> {
  const reply = await scripts.ackBatch.run(redis, [keys.batch, keys.meta, keys.stats, keys.dead], [args.batchId, ...args.deadLetters]);
  if (reply === ScriptCode.BATCH_MISMATCH) return null;
  if (typeof reply !== 'number' || reply < 0) throw new ScriptError('ackBatch', `unexpected reply ${JSON.stringify(reply)}`);
  return reply;
}

export type GroupMode = 'join' | 'commit' | 'resolve' | 'leave' | 'split';

/** lua/flushGroup-2.lua: one step of a group insert on the shard of one of its batches; `batches` (the group's `shard:id` list, its script's "members") is set when resolve found the group committed. */
export async function flushGroup(
  redis: RedisClient,
  keys: { meta: string; lease: string },
  args: { mode: GroupMode; batchId: string; token: string; owner: string; batches: string },
): Promise<{ done: boolean; batches?: string }> {
  const reply = expectArray(scripts.flushGroup, await scripts.flushGroup.run(redis, [keys.meta, keys.lease], [args.mode, args.batchId, args.token, args.owner, args.batches]));
  const [ok, batches] = reply;
  if ((ok !== 0 && ok !== 1) || (batches !== undefined && typeof batches !== 'string')) throw new ScriptError('flushGroup', `unexpected reply ${JSON.stringify(reply)}`);
  return batches === undefined ? { done: ok === 1 } : { done: ok === 1, batches };
}

/** lua/releaseLease-1.lua: true when the caller held the lease and gave it up. */
export async function releaseLease(redis: RedisClient, keys: { lease: string }, args: { owner: string }): Promise<boolean> {
  const reply = await scripts.releaseLease.run(redis, [keys.lease], [args.owner]);
  if (reply !== 0 && reply !== 1) throw new ScriptError('releaseLease', `unexpected reply ${JSON.stringify(reply)}`);
  return reply === 1;
}

/** Which of a visitor's two device records holds its session (lua/intakeSessions-0.lua). */
export interface IntakeSessionReply {
  holder: 'today' | 'yesterday';
  sessionId: string;
}

/** One visitor of an intakeSessions call: its two device records, its event time and the session id to start if none is live. */
export interface IntakeSessionAsk {
  today: string;
  yesterday: string;
  nowMs: number;
  newSessionId: string;
}

/**
 * The ingestion server's session decisions for a batch of visitors, in one
 * call: for each, the live session of the device's record under today's or
 * yesterday's id, or its `newSessionId` recorded under today's. Atomic, so
 * replicas agree; decided in order, so one visitor twice gets one session.
 * (Under Redis Cluster the asks of a call must share a hash tag.)
 */
export async function intakeSessions(
  redis: RedisClient,
  asks: readonly IntakeSessionAsk[],
  timing: { timeoutMs: number; ttlMs: number },
): Promise<IntakeSessionReply[]> {
  const keys: string[] = [];
  const args: (string | number)[] = [timing.timeoutMs, timing.ttlMs];
  for (const a of asks) {
    keys.push(a.today, a.yesterday);
    args.push(a.nowMs, a.newSessionId);
  }
  const reply = expectArray(scripts.intakeSessions, await scripts.intakeSessions.run(redis, keys, args));
  if (reply.length !== 2 * asks.length) throw new ScriptError('intakeSessions', `${reply.length / 2} answers for ${asks.length} visitors`);
  return asks.map((_, i) => {
    const holder = reply[2 * i];
    const sessionId = reply[2 * i + 1];
    if ((holder !== 1 && holder !== 2) || typeof sessionId !== 'string') throw new ScriptError('intakeSessions', `unexpected reply ${JSON.stringify(reply.slice(2 * i, 2 * i + 2))}`);
    return { holder: holder === 1 ? 'today' : 'yesterday', sessionId };
  });
}

/** The session decision of one visitor (intakeSessions with one ask). */
export async function intakeSession(
  redis: RedisClient,
  keys: { today: string; yesterday: string },
  args: { nowMs: number; timeoutMs: number; newSessionId: string; ttlMs: number },
): Promise<IntakeSessionReply> {
  const [reply] = await intakeSessions(redis, [{ ...keys, nowMs: args.nowMs, newSessionId: args.newSessionId }], args);
  return reply as IntakeSessionReply;
}

/** Fails loudly when a script returned a code, naming the script and the code. */
export function expectArray(script: LuaScript, reply: unknown): unknown[] {
  if (Array.isArray(reply)) return reply as unknown[];
  const name = Object.entries(ScriptCode).find(([, code]) => code === reply)?.[0] ?? 'unexpected reply';
  throw new ScriptError(script.name, `returned ${String(reply)} (${name})`);
}

/** Moves one dead letter's row back to ready (lua/redriveDead-3.lua); false when the entry is gone already. */
export async function redriveDead(redis: RedisClient, keys: { dead: string; ready: string; stats: string }, entry: string, row: string): Promise<boolean> {
  const reply = await scripts.redriveDead.run(redis, [keys.dead, keys.ready, keys.stats], [entry, row]);
  if (reply !== 0 && reply !== 1) throw new ScriptError('redriveDead', `unexpected reply ${JSON.stringify(reply)}`);
  return reply === 1;
}
