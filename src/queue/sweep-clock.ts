/**
 * The buffer clock of a sweep: now, but never past the enqueue time of the
 * oldest job still waiting in the queue. Grace (O1) covers reordering between
 * events that reach the buffer; events held in the queue (intake paused by
 * backpressure, no ingest worker running, a burst) have not reached it yet,
 * and a row they would change must not be written before they do. So the
 * sweep emits only what would have been emitted by the time those events were
 * enqueued. The hold is bounded by `holdMaxMs` (SWEEP_HOLD_MAX_MS): a Redis at
 * maxmemory frees memory only when sessions are emitted and finalised, so an
 * unbounded hold would wait on jobs that wait on memory. (Delayed jobs,
 * BullMQ's retries, are not waited for: transient failures are held in place
 * instead, see WorkerService.)
 *
 * A job leaves `waiting` when a worker takes it, before its events are in the
 * buffer, so the jobs in `active` hold the clock too (their ids and enqueue
 * times only: one LRANGE and one HGET per active job, at most the workers'
 * total concurrency). A job left active by a dead worker holds it until
 * BullMQ moves it back (WORKER_LOCK_MS), within `holdMaxMs`.
 *
 * It reads BullMQ's own keys (its `wait` list gets new jobs at its head, so
 * the oldest is the last; `active`; a job's hash field `timestamp`), never a
 * job's data, which getJobs() would fetch on every sweep.
 */
import type { Queue } from 'bullmq';
import type { RedisClient } from '../ops/redis.js';

export async function sweepClock(redis: RedisClient, queue: Pick<Queue, 'toKey'>, now: number, holdMaxMs: number): Promise<number> {
  const lists = (await redis.pipeline().lindex(queue.toKey('wait'), -1).lrange(queue.toKey('active'), 0, -1).exec()) ?? [];
  const failed = lists.find(([err]) => err);
  if (failed) throw failed[0] as Error;
  const oldestWaiting = lists[0]?.[1] as string | null;
  const ids = [...(oldestWaiting ? [oldestWaiting] : []), ...((lists[1]?.[1] ?? []) as string[])];
  let clock = now;
  if (ids.length > 0) {
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hget(queue.toKey(id), 'timestamp');
    for (const [err, ts] of (await pipeline.exec()) ?? []) {
      if (err) throw err;
      if (typeof ts === 'string') clock = Math.min(clock, Number(ts));
    }
  }
  return Math.max(clock, now - holdMaxMs);
}
