/**
 * The job contract between the ingestion API (producer) and the workers.
 * `event` jobs carry one event; `batch` jobs carry up to MAX_BATCH_EVENTS.
 * Events carry their ids before they are enqueued, so a retried job is
 * recognised by the buffer and never counted twice.
 */
import { UnrecoverableError, type Job } from 'bullmq';
import { ValidationError } from '../errors.js';
import { normalizeEvent, type NormalizedEvent } from '../event/normalize.js';

export const JOB_EVENT = 'event';
export const JOB_BATCH = 'batch';

/** Most events in one batch job: bounds job size (~64 KiB × 1 000) and one Lua call's work. */
export const MAX_BATCH_EVENTS = 1_000;

export interface EventJobData {
  event: Record<string, unknown>;
}

export interface BatchJobData {
  events: Record<string, unknown>[];
}

/** What a worker returns for a job: counts, and the invalid events of a batch by index. */
export interface JobResult {
  accepted: number;
  duplicates: number;
  late: number;
  rejected: { index: number; reason: string }[];
}

/** A job's id for an event that came without one: stable across retries of the job. */
function fallbackId(job: Pick<Job, 'id'>, index: number): () => string {
  return () => `job-${String(job.id).replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 40)}-${index}`;
}

/**
 * A job's events, validated and normalised (receive time: the job's enqueue
 * time), and the invalid ones by index with the reason; a job of another
 * shape fails as unrecoverable.
 */
export function parseJob(job: Pick<Job, 'id' | 'name' | 'data' | 'timestamp'>, maxFutureMs: number): { valid: NormalizedEvent[]; rejected: JobResult['rejected'] } {
  let raw: unknown[];
  if (job.name === JOB_EVENT) raw = [(job.data as { event?: unknown }).event];
  else if (job.name === JOB_BATCH && Array.isArray((job.data as { events?: unknown }).events)) raw = (job.data as { events: unknown[] }).events;
  else throw new UnrecoverableError(`job ${String(job.id)}: expected an "event" job with data.event or a "batch" job with data.events[]`);
  const valid: NormalizedEvent[] = [];
  const rejected: JobResult['rejected'] = [];
  raw.forEach((event, index) => {
    try {
      valid.push(normalizeEvent(event, { receivedAtMs: job.timestamp, maxFutureMs }, fallbackId(job, index)));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      rejected.push({ index, reason: err.message });
    }
  });
  return { valid, rejected };
}
