/**
 * The job contract between the ingestion API (producer) and the workers.
 * `event` jobs carry one event; `batch` jobs carry up to MAX_BATCH_EVENTS.
 * Events carry their ids before they are enqueued, so a retried job is
 * recognised by the buffer and never counted twice.
 */
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
