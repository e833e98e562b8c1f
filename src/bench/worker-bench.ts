/**
 * Worker benchmarks, side by side on one Redis and one ClickHouse:
 *
 * - bullmqNoop: single-event jobs through a BullMQ worker whose processor does
 *   nothing (same payloads, same concurrency): BullMQ's own ceiling.
 * - workerSingle: the Event Lens worker on the same single-event jobs, until
 *   every row is in ClickHouse.
 * - workerBatch: batch jobs of 100 events, until every row is in ClickHouse.
 *
 * Jobs are enqueued before the clock starts. Sessions are finalised at the end
 * as `replay --drain` does (the inactivity timeout would otherwise hold the
 * last page views for 30 minutes); that drain is inside the measured time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { ulid } from 'ulid';
import { settlingEvents } from '../buffer/durations.js';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { queryRows, type ClickHouse } from '../clickhouse/client.js';
import { rowId } from '../event/columns.js';
import type { Config } from '../config.js';
import { Flusher, flusherOptions } from '../flush/flusher.js';
import { eventsBySession, type GeneratedEvent } from '../generate/model.js';
import { createLogger } from '../ops/log.js';
import { Metrics } from '../ops/metrics.js';
import { deleteByPrefix, type RedisClient } from '../ops/redis.js';
import { JOB_BATCH, JOB_EVENT } from '../queue/jobs.js';
import { waitUntilDrained } from '../queue/drain.js';
import { Producer } from '../queue/producer.js';
import { WorkerService } from '../queue/worker-service.js';
import { quantile } from './buffer-bench.js';
import { mainThreadCpuMs } from './cpu.js';
import { startProfile } from './profile.js';

export interface WorkerBenchResult {
  bullmqNoopJobsPerSec: number;
  workerSingleEventsPerSec: number;
  workerBatchEventsPerSec: number;
  singleVsNoop: number;
}


async function fill(queue: Queue, events: readonly GeneratedEvent[], perJob: number): Promise<void> {
  const jobs =
    perJob === 1
      ? events.map((event) => ({ name: JOB_EVENT, data: { event } }))
      : Array.from({ length: Math.ceil(events.length / perJob) }, (_, i) => ({ name: JOB_BATCH, data: { events: events.slice(i * perJob, (i + 1) * perJob) } }));
  for (let i = 0; i < jobs.length; i += 1_000) await queue.addBulk(jobs.slice(i, i + 1_000));
}

/** Jobs are drained well within this; a stuck run fails instead of hanging. */
const drained = (queue: Queue): Promise<void> => waitUntilDrained(queue, 600_000);

export async function benchWorker(
  redis: RedisClient,
  ch: ClickHouse,
  base: Config,
  events: readonly GeneratedEvent[],
  onStep: (label: string) => void = () => {},
): Promise<WorkerBenchResult> {
  const connection = { url: base.redisUrl, maxRetriesPerRequest: null };
  const run = async (label: string, perJob: number, noop: boolean): Promise<number> => {
    onStep(label);
    const name = `bench-${label}-${ulid()}`;
    const config: Config = { ...base, queueName: name, keyPrefix: name, sweepIntervalMs: 100, flushIntervalMs: 200 };
    const queue = new Queue(name, { connection, prefix: config.queuePrefix, defaultJobOptions: { removeOnComplete: true } });
    await fill(queue, events, perJob);
    await ch.client.command({ query: `TRUNCATE TABLE ${ch.database}.events` });
    const started = performance.now();
    if (noop) {
      const worker = new Worker(name, async () => {}, { connection, prefix: config.queuePrefix, concurrency: config.workerConcurrency });
      await drained(queue);
      await worker.close();
    } else {
      const buffer = new SessionBuffer(redis, config);
      const flusher = new Flusher(redis, buffer, ch, flusherOptions(config, name));
      const service = new WorkerService({ config, role: 'all', buffer, flusher, metrics: new Metrics(), log: createLogger('silent'), redis: { url: base.redisUrl, cluster: base.redisCluster } });
      await service.start();
      await drained(queue);
      await buffer.sweep(Date.now() + config.sessionTimeoutMs + config.graceMs + 1);
      await service.stop(600_000);
      const [row] = await queryRows<{ n: string | number }>(ch, `SELECT count() AS n FROM ${ch.database}.events`);
      if (Number(row?.n) !== events.length) throw new Error(`bench ${label}: ${String(row?.n)} rows in ClickHouse, expected ${events.length}`);
    }
    const seconds = (performance.now() - started) / 1000;
    await queue.obliterate({ force: true });
    await queue.close();
    await deleteByPrefix(redis, `${name}:`);
    return events.length / seconds;
  };
  const bullmqNoop = await run('bullmqNoop', 1, true);
  const workerSingle = await run('workerSingle', 1, false);
  const workerBatch = await run('workerBatch', 100, false);
  return {
    bullmqNoopJobsPerSec: Math.round(bullmqNoop),
    workerSingleEventsPerSec: Math.round(workerSingle),
    workerBatchEventsPerSec: Math.round(workerBatch),
    singleVsNoop: Number((workerSingle / bullmqNoop).toFixed(3)),
  };
}

export interface EndToEndResult {
  /** Events per second from the first enqueue until the queue is drained, with the flusher writing alongside. */
  eventsPerSec: number;
  /** Settle-to-visible latency of every row settled by a later event (rows only finalisation settles are left out). */
  p50Ms: number;
  p99Ms: number;
  latencyRows: number;
  /** GRACE_MS + 2 s: the ceiling for p99. */
  p99TargetMs: number;
  /**
   * CPU µs of the process's main thread per event while the worker ingested,
   * swept and flushed them (the bench's producer, measured alone on the same
   * jobs, subtracted); null without /proc. `processCpuUsPerEvent` is the
   * whole process, embedded ClickHouse's threads included.
   */
  workerCpuUsPerEvent: number | null;
  processCpuUsPerEvent: number;
  graceMs: number;
  flushIntervalMs: number;
  /** With `bench --profile`: the CPU profile of the measured phase. */
  profile?: string;
}

/**
 * endToEnd: batch jobs of 100 events through the producer, into the worker
 * (default sweep, grace and flush settings), until the rows are in
 * ClickHouse. The settle time of a row is when the ingest call holding the
 * event that settles it returned (`settlingEvents`); its visible time is when
 * ClickHouse confirmed the insert holding it. After the queue drains, the
 * bench waits for every row a later event settled, then finalises the rest
 * (as `replay --drain` does) and checks the row count.
 */
export async function benchEndToEnd(
  ch: ClickHouse,
  base: Config,
  events: readonly GeneratedEvent[],
  redis: RedisClient,
  onStep: (label: string) => void = () => {},
  profileDir?: string,
): Promise<EndToEndResult> {
  onStep('endToEnd');
  const name = `bench-e2e-${ulid()}`;
  const config: Config = { ...base, queueName: name, keyPrefix: name };
  await ch.client.command({ query: `TRUNCATE TABLE ${ch.database}.events` });

  // which event settles each row (an event without a session settles its own)
  const settler = new Map<string, string | null>();
  const { sessions, sessionless } = eventsBySession(events);
  for (const id of sessionless) settler.set(id, id);
  for (const list of sessions) for (const [id, by] of settlingEvents(list, config.sessionTimeoutMs)) settler.set(id, by);

  // the bench's own bookkeeping runs in the process being measured: per ingest call it keeps
  // the call's event ids (not the events, whose payloads would stay on the heap) and its time,
  // and works out each event's first arrival afterwards
  const ingestCalls: { ids: readonly string[]; at: number }[] = [];
  const visible = new Map<string, number>();
  let visibleSettled = 0;
  const buffer = new SessionBuffer(redis, config);
  const ingest = buffer.ingestEach.bind(buffer);
  buffer.ingestEach = async (batch, nowMs) => {
    const result = await ingest(batch, nowMs);
    ingestCalls.push({ ids: batch.map((e) => e.id), at: performance.now() });
    return result;
  };
  const eventsTable = `${ch.database}.events`;
  const flusher = new Flusher(redis, buffer, ch, {
    ...flusherOptions(config, name),
    onInserted: (table, rows) => {
      if (table !== eventsTable) return;
      const at = performance.now();
      for (const row of rows) {
        // no JSON.parse of every row in the process being measured
        const id = rowId(row);
        if (visible.has(id)) continue;
        visible.set(id, at);
        if (settler.get(id) !== null) visibleSettled += 1;
      }
    },
  });
  const service = new WorkerService({ config, role: 'all', buffer, flusher, metrics: new Metrics(), log: createLogger('silent'), redis: { url: base.redisUrl, cluster: base.redisCluster } });
  const producer = new Producer({ redisUrl: base.redisUrl, queueName: name, prefix: config.queuePrefix });
  // the producer's own CPU on the same jobs, into a queue no worker reads
  const scratch = new Producer({ redisUrl: base.redisUrl, queueName: `${name}-producer-only`, prefix: config.queuePrefix });
  const producerCpu0 = mainThreadCpuMs();
  for (let i = 0; i < events.length; i += 100) await scratch.enqueueBatch(events.slice(i, i + 100));
  const producerCpuMs = (mainThreadCpuMs() ?? 0) - (producerCpu0 ?? 0);
  await scratch.queue.obliterate({ force: true }).catch(() => {});
  await scratch.close();

  await service.start();
  // the worker's profile covers the measured phase only (the producer's calls are in it, by their own names)
  const stopProfile = profileDir ? await startProfile(profileDir, 'worker-endToEnd') : undefined;
  const cpu0 = mainThreadCpuMs();
  const processCpu0 = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < events.length; i += 100) await producer.enqueueBatch(events.slice(i, i + 100));
  await drained(producer.queue);
  const seconds = (performance.now() - started) / 1000;

  const settledIds = [...settler].filter(([, by]) => by !== null).map(([id]) => id);
  // counted as the inserts are confirmed: no scan of every id while the worker runs
  const waitFor = async (seen: () => number, want: number, timeoutMs: number, what: string): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    while (seen() < want) {
      if (performance.now() > deadline) throw new Error(`bench endToEnd: ${want - seen()} ${what} rows not visible after ${timeoutMs} ms`);
      await sleep(50);
    }
  };
  onStep('endToEnd (waiting for settled rows)');
  await waitFor(() => visibleSettled, settledIds.length, config.graceMs + config.flushIntervalMs + 60_000, 'settled');
  await buffer.sweep(Date.now() + config.sessionTimeoutMs + config.graceMs + 1);
  await waitFor(() => visible.size, settler.size, 60_000, 'finalised');
  const cpu1 = mainThreadCpuMs();
  const processCpu = process.cpuUsage(processCpu0);
  const profile = await stopProfile?.();
  await service.stop(600_000);
  await producer.close();
  const [row] = await queryRows<{ n: string | number }>(ch, `SELECT count() AS n FROM ${eventsTable}`);
  if (Number(row?.n) !== events.length) throw new Error(`bench endToEnd: ${String(row?.n)} rows in ClickHouse, expected ${events.length}`);
  await producer.queue.obliterate({ force: true }).catch(() => {});
  await deleteByPrefix(redis, `${name}:`);

  const arrived = new Map<string, number>();
  for (const call of ingestCalls) for (const id of call.ids) if (!arrived.has(id)) arrived.set(id, call.at);
  const latencies = settledIds
    .map((id) => {
      const by = settler.get(id) as string;
      const settle = Math.max(arrived.get(id) ?? Infinity, arrived.get(by) ?? Infinity);
      return (visible.get(id) as number) - settle;
    })
    .sort((a, b) => a - b);
  const q = (p: number): number => Math.round(quantile(latencies, p));
  return {
    eventsPerSec: Math.round(events.length / seconds),
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    latencyRows: latencies.length,
    p99TargetMs: config.graceMs + 2_000,
    workerCpuUsPerEvent: cpu0 === null || cpu1 === null ? null : Number((((cpu1 - cpu0 - producerCpuMs) * 1000) / events.length).toFixed(2)),
    processCpuUsPerEvent: Number(((processCpu.user + processCpu.system) / events.length).toFixed(2)),
    graceMs: config.graceMs,
    flushIntervalMs: config.flushIntervalMs,
    ...(profile ? { profile } : {}),
  };
}
