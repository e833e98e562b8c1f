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
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { ulid } from 'ulid';
import { SessionBuffer } from '../buffer/session-buffer.ts';
import { queryRows, type ClickHouse } from '../clickhouse/client.ts';
import type { Config } from '../config.ts';
import { Flusher, flusherOptions } from '../flush/flusher.ts';
import type { GeneratedEvent } from '../generate/model.ts';
import { createLogger } from '../ops/log.ts';
import { Metrics } from '../ops/metrics.ts';
import { deleteByPrefix } from '../ops/redis.ts';
import { JOB_BATCH, JOB_EVENT } from '../queue/jobs.ts';
import { WorkerService } from '../queue/worker-service.ts';

export interface WorkerBenchResult {
  bullmqNoopJobsPerSec: number;
  workerSingleEventsPerSec: number;
  workerBatchEventsPerSec: number;
  singleVsNoop: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function fill(queue: Queue, events: readonly GeneratedEvent[], perJob: number): Promise<void> {
  const jobs =
    perJob === 1
      ? events.map((event) => ({ name: JOB_EVENT, data: { event } }))
      : Array.from({ length: Math.ceil(events.length / perJob) }, (_, i) => ({ name: JOB_BATCH, data: { events: events.slice(i * perJob, (i + 1) * perJob) } }));
  for (let i = 0; i < jobs.length; i += 1_000) await queue.addBulk(jobs.slice(i, i + 1_000));
}

async function drained(queue: Queue): Promise<void> {
  for (;;) {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (Object.values(counts).every((n) => n === 0)) return;
    await sleep(20);
  }
}

export async function benchWorker(
  redis: Redis,
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
      const service = new WorkerService({ config, role: 'all', buffer, flusher, metrics: new Metrics(), log: createLogger('silent'), redisUrl: base.redisUrl });
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
