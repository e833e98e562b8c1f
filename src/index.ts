/**
 * The package's public surface for the ingestion API: the typed producer, the
 * event type it takes, the job contract and the errors a caller can meet.
 * (The worker itself runs as `event-lens worker`; the ingestion server as
 * `event-lens serve`.)
 */
export {
  Producer,
  EnqueueError,
  DEFAULT_JOB_OPTIONS,
  type EnqueueErrorCode,
  type IncomingEvent,
  type ProducerOptions,
} from './queue/producer.js';
export { JOB_BATCH, JOB_EVENT, MAX_BATCH_EVENTS, type BatchJobData, type EventJobData, type JobResult } from './queue/jobs.js';
export { normalizeEvent, type NormalizedEvent } from './event/normalize.js';
export { EventLensError, ValidationError, type ValidationIssue } from './errors.js';
