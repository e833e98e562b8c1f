/**
 * The package's public surface for the ingestion API: the typed producer and
 * the job contract. (The worker itself runs as `event-lens worker`.)
 */
export { Producer, DEFAULT_JOB_OPTIONS, type IncomingEvent, type ProducerOptions } from './queue/producer.ts';
export { JOB_BATCH, JOB_EVENT, MAX_BATCH_EVENTS, type BatchJobData, type EventJobData, type JobResult } from './queue/jobs.ts';
export { normalizeEvent, type NormalizedEvent } from './event/normalize.ts';
export { ValidationError } from './errors.ts';
