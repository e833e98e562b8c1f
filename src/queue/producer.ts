/**
 * The producer for the ingestion API: `enqueueEvent` and `enqueueBatch`.
 *
 * Each event gets a ULID before it is enqueued (when it has no id), so a job
 * retried by BullMQ, or enqueued again by a client that timed out, carries
 * the same ids and the buffer drops the copies. Single-event jobs use the
 * event id as job id, so BullMQ itself ignores a second enqueue while the
 * first job is still known. Job options keep Redis bounded: completed jobs
 * are dropped, failed ones kept up to a cap for inspection, and transient
 * failures are retried with exponential backoff.
 */
import { Queue, type JobsOptions } from 'bullmq';
import { ulid } from 'ulid';
import { bullConnection, releaseBullConnection } from '../ops/redis.ts';
import { JOB_BATCH, JOB_EVENT, MAX_BATCH_EVENTS, type BatchJobData, type EventJobData } from './jobs.ts';

export interface ProducerOptions {
  /** Redis URL (`redis://` or `rediss://`). */
  redisUrl: string;
  /** The URL names a node of a Redis Cluster (use a hash-tagged `prefix`, such as `{bull}`). @defaultValue false */
  cluster?: boolean;
  /** @defaultValue `events` */
  queueName?: string;
  /** BullMQ key prefix; on Redis Cluster it needs a hash tag such as `{el}`. @defaultValue `bull`, or `{bull}` with `cluster` */
  prefix?: string;
  /** Failed jobs kept for inspection. @defaultValue 10 000 */
  keepFailed?: number;
  /** Completed jobs kept (with their results: counts and rejected events by index). @defaultValue 0 */
  keepCompleted?: number;
}

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: true,
  removeOnFail: { count: 10_000 },
};

/** An event as the ingestion API received it (validated by the worker, DESIGN §1). */
export type IncomingEvent = object;

function withId(event: IncomingEvent): Record<string, unknown> {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new TypeError('an event must be a JSON object');
  }
  const e = event as Record<string, unknown>;
  return e.id === undefined ? { ...e, id: ulid() } : e;
}

export class Producer {
  readonly queue: Queue;
  private readonly connection: ReturnType<typeof bullConnection>;

  constructor(options: ProducerOptions) {
    this.connection = bullConnection({ url: options.redisUrl, cluster: options.cluster ?? false }, 'producer');
    this.queue = new Queue(options.queueName ?? 'events', {
      connection: this.connection,
      prefix: options.prefix ?? (options.cluster ? '{bull}' : 'bull'),
      defaultJobOptions: {
        ...DEFAULT_JOB_OPTIONS,
        removeOnFail: { count: options.keepFailed ?? 10_000 },
        removeOnComplete: options.keepCompleted ? { count: options.keepCompleted } : true,
      },
    });
  }

  /** Enqueues one event; returns its id. */
  async enqueueEvent(event: IncomingEvent): Promise<string> {
    const e = withId(event);
    const id = String(e.id);
    const data: EventJobData = { event: e };
    // a job id that is a plain string of safe characters; others get BullMQ's own
    const jobId = /^[A-Za-z0-9._-]{1,64}$/.test(id) ? `ev-${id}` : undefined;
    await this.queue.add(JOB_EVENT, data, jobId ? { jobId } : {});
    return id;
  }

  /** Enqueues events as batch jobs of at most MAX_BATCH_EVENTS; returns their ids in order. */
  async enqueueBatch(events: readonly IncomingEvent[]): Promise<string[]> {
    const withIds = events.map(withId);
    const jobs: { name: string; data: BatchJobData }[] = [];
    for (let i = 0; i < withIds.length; i += MAX_BATCH_EVENTS) {
      jobs.push({ name: JOB_BATCH, data: { events: withIds.slice(i, i + MAX_BATCH_EVENTS) } });
    }
    await this.queue.addBulk(jobs);
    return withIds.map((e) => String(e.id));
  }

  async close(): Promise<void> {
    await this.queue.close();
    releaseBullConnection(this.connection);
  }
}
