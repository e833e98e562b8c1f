/** Waiting for a queue to empty: the benchmark and the chaos suite both need it. */
import type { Queue } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';

/** Job states that still have work to do (failed and completed jobs are done). */
export const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const;

/** Jobs of the queue that are not done yet. */
export async function pendingJobs(queue: Queue): Promise<number> {
  const counts = await queue.getJobCounts(...PENDING_STATES);
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * Resolves once no job is pending. A failed read (Redis restarting) is
 * retried; after `timeoutMs` it throws with the last counts it saw.
 */
export async function waitUntilDrained(queue: Queue, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: number | string = 'unknown';
  for (;;) {
    try {
      last = await pendingJobs(queue);
      if (last === 0) return;
    } catch (err) {
      last = `unreadable (${(err as Error).message})`;
    }
    if (Date.now() > deadline) throw new Error(`queue ${queue.name} not drained within ${timeoutMs} ms: ${last} jobs pending`);
    await sleep(intervalMs);
  }
}
