/**
 * Buffer benchmarks, measured side by side on the same Redis and the same
 * events (this machine is shared and noisy, so ratios matter more than
 * absolute figures):
 *
 * - luaPerEvent: the floor cost of one script call per event (ZADD + HSET,
 *   lua/bench/perEvent-2.lua), pipelined from one client.
 * - bufferBatched: Event Lens's ingest script, one call per shard per chunk.
 * - bufferSweep: sweeping every held session to the end (emit + finalise).
 * - redisBytesPerHeldEvent: INFO used_memory growth per event held, next to
 *   the mean payload size; Redis CPU µs per event from INFO cpu. Then the
 *   same events held again under the listpack settings the README recommends
 *   (CONFIG SET for the measurement, the old values put back).
 */
import type { BufferSettings } from '../config.js';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { loadScript } from '../buffer/scripts.js';
import type { NormalizedEvent } from '../event/normalize.js';
import { deleteByPrefix, type RedisClient } from '../ops/redis.js';

export interface BufferBenchResult {
  events: number;
  meanPayloadBytes: number;
  luaPerEventPerSec: number;
  bufferBatchedPerSec: number;
  bufferSweepPerSec: number;
  batchedVsPerEventLua: number;
  redisCpuUsPerEventBatched: number;
  redisCpuUsPerEventPerEvent: number;
  redisBytesPerHeldEvent: number;
  /** The same with `hash-max-listpack-value 2048` and `zset-max-listpack-value 128`; null when CONFIG is not allowed. */
  redisBytesPerHeldEventRecommended: number | null;
}

/** Redis settings the README recommends (docker-compose.yml sets them): session hashes and sorted sets stay compact listpacks. */
export const RECOMMENDED_LISTPACK = { 'hash-max-listpack-value': '2048', 'zset-max-listpack-value': '128' } as const;

/**
 * Runs fn with the given CONFIG settings and puts the old values back, also
 * when fn throws (this may be a server the bench did not start). Returns
 * null without running fn when CONFIG is not allowed.
 */
async function withConfig<T>(redis: RedisClient, settings: Readonly<Record<string, string>>, fn: () => Promise<T>): Promise<T | null> {
  const previous: [string, string][] = [];
  const restore = async (): Promise<void> => {
    for (const [name, value] of previous) await redis.config('SET', name, value);
  };
  try {
    for (const [name, value] of Object.entries(settings)) {
      const [, old] = (await redis.config('GET', name)) as [string, string];
      previous.push([name, old]);
      await redis.config('SET', name, value);
    }
  } catch {
    await restore().catch(() => {});
    return null;
  }
  try {
    return await fn();
  } finally {
    await restore();
  }
}

/** Ingests the events in chunks on the buffer clock of their createdAt; returns the last clock value. */
async function ingestAll(buffer: SessionBuffer, events: readonly NormalizedEvent[], chunk: number, onChunk: (fraction: number) => void = () => {}): Promise<number> {
  let clock = 0;
  for (let i = 0; i < events.length; i += chunk) {
    const slice = events.slice(i, i + chunk);
    for (const e of slice) clock = Math.max(clock, e.createdAtMs);
    await buffer.ingest(slice, clock);
    onChunk(i / events.length);
  }
  return clock;
}

async function redisCpuSeconds(redis: RedisClient): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return read('used_cpu_sys') + read('used_cpu_user');
}

async function usedMemory(redis: RedisClient): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
}

const perEvent = loadScript('bench/perEvent-2.lua');

/** Runs the buffer benchmarks; `onStep` reports progress (0..1). */
export async function benchBuffer(
  redis: RedisClient,
  events: readonly NormalizedEvent[],
  settings: BufferSettings,
  onStep: (label: string, fraction: number) => void = () => {},
): Promise<BufferBenchResult> {
  const meanPayloadBytes = events.reduce((s, e) => s + e.payload.length, 0) / events.length;
  const chunk = 2_000;

  // 1. one script call per event, pipelined
  onStep('luaPerEvent', 0);
  await redis.script('LOAD', perEvent.source);
  let cpu = await redisCpuSeconds(redis);
  let started = performance.now();
  for (let i = 0; i < events.length; i += chunk) {
    const pipeline = redis.pipeline();
    for (const e of events.slice(i, i + chunk)) {
      const tag = `${settings.keyPrefix}-lua:{${e.sessionId}}`;
      pipeline.evalsha(perEvent.sha, 2, `${tag}:z`, `${tag}:h`, e.id, e.createdAtMs, e.payload);
    }
    await pipeline.exec();
    onStep('luaPerEvent', i / events.length);
  }
  const luaSeconds = (performance.now() - started) / 1000;
  const luaCpu = (await redisCpuSeconds(redis)) - cpu;
  await deleteByPrefix(redis, `${settings.keyPrefix}-lua:`);

  // 2. the batched buffer: ingest everything, measuring memory while it is held
  const buffer = new SessionBuffer(redis, settings);
  const memoryBefore = await usedMemory(redis);
  cpu = await redisCpuSeconds(redis);
  started = performance.now();
  const clock = await ingestAll(buffer, events, chunk, (f) => onStep('bufferBatched', f));
  const batchedSeconds = (performance.now() - started) / 1000;
  const batchedCpu = (await redisCpuSeconds(redis)) - cpu;
  const memoryHeld = (await usedMemory(redis)) - memoryBefore;

  // 3. sweep it all out (emit every row, finalise every session)
  onStep('bufferSweep', 0);
  started = performance.now();
  await buffer.sweep(clock + settings.sessionTimeoutMs + settings.graceMs + 1);
  const sweepSeconds = (performance.now() - started) / 1000;
  await deleteByPrefix(redis, `${settings.keyPrefix}:`);

  // 4. held memory again, under the recommended listpack settings
  onStep('memory (recommended settings)', 0);
  const recommended = await withConfig(redis, RECOMMENDED_LISTPACK, async () => {
    const prefix = `${settings.keyPrefix}-listpack`;
    const before = await usedMemory(redis);
    await ingestAll(new SessionBuffer(redis, { ...settings, keyPrefix: prefix }), events, chunk);
    const held = (await usedMemory(redis)) - before;
    await deleteByPrefix(redis, `${prefix}:`);
    return Math.round(held / events.length);
  });

  const luaPerEventPerSec = events.length / luaSeconds;
  const bufferBatchedPerSec = events.length / batchedSeconds;
  return {
    events: events.length,
    meanPayloadBytes: Math.round(meanPayloadBytes),
    luaPerEventPerSec: Math.round(luaPerEventPerSec),
    bufferBatchedPerSec: Math.round(bufferBatchedPerSec),
    bufferSweepPerSec: Math.round(events.length / sweepSeconds),
    batchedVsPerEventLua: Number((bufferBatchedPerSec / luaPerEventPerSec).toFixed(3)),
    redisCpuUsPerEventBatched: Number(((batchedCpu * 1e6) / events.length).toFixed(2)),
    redisCpuUsPerEventPerEvent: Number(((luaCpu * 1e6) / events.length).toFixed(2)),
    redisBytesPerHeldEvent: Math.round(memoryHeld / events.length),
    redisBytesPerHeldEventRecommended: recommended,
  };
}

export interface GrowthPoint {
  heldSessions: number;
  /** Round trip of one ingest call (20 events), as the worker sees it. */
  scriptP50Ms: number;
  scriptP99Ms: number;
  /** Execution time inside Redis of the same calls (SLOWLOG), without client and network noise; null when CONFIG is not allowed. */
  serverP50Ms: number | null;
  serverP99Ms: number | null;
  bytesPerHeldEvent: number;
}

const PROBE_CALLS = 1_000;

/** Runs fn while Redis logs every command's execution time; returns the EVALSHA/EVAL times in ms (null without CONFIG rights, fn then runs alone). */
async function serverTimes(redis: RedisClient, fn: () => Promise<void>): Promise<number[] | null> {
  const logged = await withConfig(redis, { 'slowlog-log-slower-than': '0', 'slowlog-max-len': String(PROBE_CALLS * 2) }, async () => {
    await redis.slowlog('RESET');
    await fn();
    const entries = (await redis.slowlog('GET', PROBE_CALLS * 2)) as [number, number, number, string[]][];
    return entries.filter((e) => /^eval/i.test(e[3][0] ?? '')).map((e) => e[2] / 1000);
  });
  // CONFIG is not allowed here: time the calls on the client only
  if (logged === null) await fn();
  return logged;
}

/** The q-quantile of ascending values (nearest rank). */
export const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

/**
 * Script latency and memory as the number of held sessions grows: the buffer
 * is filled to each level with sessions of two screen views (held, not swept),
 * then 1 000 calls of 20 events each (new sessions and existing ones) are timed
 * one by one, by the client (round trip) and inside Redis (SLOWLOG). Cost per event should not depend on how much is held.
 */
export async function benchGrowth(
  redis: RedisClient,
  settings: BufferSettings,
  levels: readonly number[],
  makeEvent: (session: number, index: number) => NormalizedEvent,
  onStep: (label: string, fraction: number) => void = () => {},
): Promise<GrowthPoint[]> {
  const buffer = new SessionBuffer(redis, settings);
  const points: GrowthPoint[] = [];
  const memoryBefore = await usedMemory(redis);
  let held = 0;
  let probe = 0;
  for (const level of levels) {
    for (let s = held; s < level; s += 1_000) {
      const batch: NormalizedEvent[] = [];
      for (let k = s; k < Math.min(level, s + 1_000); k += 1) batch.push(makeEvent(k, 0), makeEvent(k, 1));
      await buffer.ingest(batch, 1);
      onStep(`fill ${level}`, s / level);
    }
    held = level;
    const times: number[] = [];
    const server = await serverTimes(redis, async () => {
      for (let call = 0; call < PROBE_CALLS; call += 1) {
        const batch: NormalizedEvent[] = [];
        for (let k = 0; k < 20; k += 1) {
          // half go to existing sessions, half start new ones beyond the level
          const session = k % 2 === 0 ? (call * 7919 + k) % level : 10_000_000 + probe++;
          batch.push(makeEvent(session, 2 + call));
        }
        const started = performance.now();
        await buffer.ingest(batch, 1);
        times.push(performance.now() - started);
      }
    });
    times.sort((a, b) => a - b);
    server?.sort((a, b) => a - b);
    const events = 2 * level + PROBE_CALLS * 20;
    points.push({
      heldSessions: level,
      scriptP50Ms: Number(quantile(times, 0.5).toFixed(3)),
      scriptP99Ms: Number(quantile(times, 0.99).toFixed(3)),
      serverP50Ms: server ? Number(quantile(server, 0.5).toFixed(3)) : null,
      serverP99Ms: server ? Number(quantile(server, 0.99).toFixed(3)) : null,
      bytesPerHeldEvent: Math.round(((await usedMemory(redis)) - memoryBefore) / events),
    });
  }
  await deleteByPrefix(redis, `${settings.keyPrefix}:`);
  return points;
}

export interface LongSessionPoint {
  /** Events the session held when the calls were timed. */
  sessionEvents: number;
  /** One-event calls appending after every known event: median / largest time inside Redis (SLOWLOG), ms; null without CONFIG. */
  appendP50Ms: number | null;
  appendMaxMs: number | null;
  /** One-event calls landing among known events (a late event in the session's middle). */
  insertP50Ms: number | null;
  insertMaxMs: number | null;
}

const LONG_PROBES = 50;

/**
 * The cost of one call on one long session, as the session grows: a session of
 * alternating screen views and clicks one second apart is built up as a worker
 * would (calls of 500 events, the buffer clock following createdAt, sweeps as
 * it goes), and at each size 50 one-event calls are timed inside Redis: events
 * appended after the last one, and events landing among known ones. A buffer
 * whose cost per event grows with the session shows it here.
 */
export async function benchLongSession(
  redis: RedisClient,
  settings: BufferSettings,
  sizes: readonly number[],
  makeEvent: (index: number, createdAtMs: number, kind: 'v' | 'o') => NormalizedEvent,
  onStep: (label: string, fraction: number) => void = () => {},
): Promise<LongSessionPoint[]> {
  const buffer = new SessionBuffer(redis, { ...settings, bufferShards: 1 });
  const t0 = 1_700_000_000_000;
  const at = (i: number): number => t0 + i * 1_000;
  const points: LongSessionPoint[] = [];
  let built = 0;
  let extra = 0;
  for (const size of sizes) {
    for (; built < size; built += 500) {
      const batch = Array.from({ length: Math.min(500, size - built) }, (_, k) => makeEvent(built + k, at(built + k), (built + k) % 2 === 0 ? 'v' : 'o'));
      const now = at(built + batch.length);
      await buffer.sweep(now);
      await buffer.ingest(batch, now);
      onStep(`long session ${size}`, built / size);
    }
    const now = at(size + LONG_PROBES * 2);
    const time = async (probe: (i: number) => NormalizedEvent): Promise<number[] | null> =>
      serverTimes(redis, async () => {
        for (let i = 0; i < LONG_PROBES; i += 1) await buffer.ingest([probe(i)], now);
      });
    // after the last event: the common case; then events in the middle, whose neighbours were emitted long ago (late)
    const append = await time((i) => makeEvent(10_000_000 + extra + i, at(size) + extra + i, 'o'));
    extra += LONG_PROBES;
    const insert = await time((i) => makeEvent(20_000_000 + extra + i, at(Math.floor(size / 2)) + 1 + i, i % 2 === 0 ? 'v' : 'o'));
    extra += LONG_PROBES;
    const stat = (times: number[] | null): [number | null, number | null] => {
      if (!times || times.length === 0) return [null, null];
      times.sort((a, b) => a - b);
      return [Number(quantile(times, 0.5).toFixed(3)), Number((times.at(-1) as number).toFixed(3))];
    };
    const [appendP50Ms, appendMaxMs] = stat(append);
    const [insertP50Ms, insertMaxMs] = stat(insert);
    points.push({ sessionEvents: size, appendP50Ms, appendMaxMs, insertP50Ms, insertMaxMs });
  }
  await deleteByPrefix(redis, `${settings.keyPrefix}:`);
  return points;
}
