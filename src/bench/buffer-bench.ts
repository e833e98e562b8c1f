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
 *   the mean payload size; Redis CPU µs per event from INFO cpu.
 */
import type { Redis } from 'ioredis';
import type { BufferSettings } from '../config.ts';
import { SessionBuffer } from '../buffer/session-buffer.ts';
import { loadScript } from '../buffer/scripts.ts';
import type { NormalizedEvent } from '../event/normalize.ts';
import { deleteByPrefix } from '../ops/redis.ts';

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
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return read('used_cpu_sys') + read('used_cpu_user');
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
}

const perEvent = loadScript('bench/perEvent-2.lua');

/** Runs the buffer benchmarks; `onStep` reports progress (0..1). */
export async function benchBuffer(
  redis: Redis,
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
  let clock = 0;
  for (let i = 0; i < events.length; i += chunk) {
    const slice = events.slice(i, i + chunk);
    for (const e of slice) clock = Math.max(clock, e.createdAtMs);
    await buffer.ingest(slice, clock);
    onStep('bufferBatched', i / events.length);
  }
  const batchedSeconds = (performance.now() - started) / 1000;
  const batchedCpu = (await redisCpuSeconds(redis)) - cpu;
  const memoryHeld = (await usedMemory(redis)) - memoryBefore;

  // 3. sweep it all out (emit every row, finalise every session)
  onStep('bufferSweep', 0);
  started = performance.now();
  await buffer.sweep(clock + settings.sessionTimeoutMs + settings.graceMs + 1);
  const sweepSeconds = (performance.now() - started) / 1000;
  await deleteByPrefix(redis, `${settings.keyPrefix}:`);

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
  };
}
