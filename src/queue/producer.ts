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
 *
 * Bounded waits (DESIGN §3): the queue's connection does not queue commands
 * while Redis is away (BullMQ's fail-fast pattern), and every call is raced
 * against `enqueueTimeoutMs`, which also covers a Redis that was never
 * reachable. A call that fails rejects with `EnqueueError` (`retryable:
 * true`: answer "retry later"). A timed-out add may still land once Redis
 * answers; re-sending the same events is harmless, because their ids are kept.
 * The outage is reported once through `onError`, not once per reconnect.
 */
import { Queue, type JobsOptions } from 'bullmq';
import { newUlid as ulid } from '../event/ulid.js';
import { redactUrl } from '../config.js';
import { EventLensError, isOutOfMemory } from '../errors.js';
import type { IncomingEvent } from '../event/schema.js';
import { bullConnection, releaseBullConnection } from '../ops/redis.js';
import { JOB_BATCH, JOB_EVENT, MAX_BATCH_EVENTS, type BatchJobData, type EventJobData } from './jobs.js';

export type { IncomingEvent };

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
  /** Longest wait of one enqueue call before it rejects with `EnqueueError` (code `ENQUEUE_TIMEOUT`). @defaultValue 5 000 */
  enqueueTimeoutMs?: number;
  /**
   * Called once when Redis becomes unreachable (and again only after an enqueue
   * succeeded in between), with one line that names the redacted URL and the
   * cause. @defaultValue one line on stderr
   */
  onError?: (message: string) => void;
}

/** Why an enqueue failed: Redis did not answer in time, refused the write (OOM), or the connection is down. */
export type EnqueueErrorCode = 'ENQUEUE_TIMEOUT' | 'ENQUEUE_REDIS_UNAVAILABLE' | 'ENQUEUE_OUT_OF_MEMORY' | 'ENQUEUE_CLOSED';

/** An enqueue that did not reach the queue. Every one is worth retrying later with the same events. */
export class EnqueueError extends EventLensError {
  declare readonly code: EnqueueErrorCode;
  readonly retryable = true;

  constructor(code: EnqueueErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The producer options a Config names (queue, prefix, cluster, timeout), for Event Lens's own commands. */
export function producerOptions(
  config: { redisUrl: string; redisCluster: boolean; queueName: string; queuePrefix: string; enqueueTimeoutMs: number },
  onError: (message: string) => void,
): ProducerOptions {
  return {
    redisUrl: config.redisUrl,
    cluster: config.redisCluster,
    queueName: config.queueName,
    prefix: config.queuePrefix,
    enqueueTimeoutMs: config.enqueueTimeoutMs,
    onError,
  };
}

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: true,
  removeOnFail: { count: 10_000 },
};

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
  private readonly timeoutMs: number;
  private readonly where: string;
  private readonly report: (message: string) => void;
  /** An outage was reported and Redis has not been ready since. */
  private down = false;
  private closed = false;

  constructor(options: ProducerOptions) {
    this.connection = bullConnection({ url: options.redisUrl, cluster: options.cluster ?? false }, 'producer');
    this.timeoutMs = options.enqueueTimeoutMs ?? 5_000;
    this.where = redactUrl(options.redisUrl);
    this.report = options.onError ?? ((message) => process.stderr.write(`event-lens producer: ${message}\n`));
    this.queue = new Queue(options.queueName ?? 'events', {
      connection: this.connection,
      prefix: options.prefix ?? (options.cluster ? '{bull}' : 'bull'),
      defaultJobOptions: {
        ...DEFAULT_JOB_OPTIONS,
        removeOnFail: { count: options.keepFailed ?? 10_000 },
        removeOnComplete: options.keepCompleted ? { count: options.keepCompleted } : true,
      },
    });
    // without a listener, every reconnect attempt would print a stack
    this.queue.on('error', (err: Error) => this.outage(err.message));
  }

  private outage(reason: string): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.report(`Redis at ${this.where} is unreachable (${reason}); enqueue calls reject within ${this.timeoutMs} ms until it is back`);
  }

  /** Runs one queue call within the timeout, turning its failure into an EnqueueError. */
  private async bounded<T>(call: () => Promise<T>): Promise<T> {
    if (this.closed) throw new EnqueueError('ENQUEUE_CLOSED', 'the producer is closed');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.outage(`no answer within ${this.timeoutMs} ms`);
        reject(new EnqueueError('ENQUEUE_TIMEOUT', `Redis at ${this.where} did not accept the events within ${this.timeoutMs} ms; retry later`));
      }, this.timeoutMs);
    });
    try {
      const result = await Promise.race([call(), timeout]);
      this.down = false; // Redis answered: the next outage is reported again
      return result;
    } catch (err) {
      if (err instanceof EnqueueError) throw err;
      if (isOutOfMemory(err)) {
        throw new EnqueueError('ENQUEUE_OUT_OF_MEMORY', `Redis at ${this.where} is out of memory (noeviction); retry later`, { cause: err });
      }
      this.outage((err as Error).message);
      throw new EnqueueError('ENQUEUE_REDIS_UNAVAILABLE', `Redis at ${this.where} is unavailable: ${(err as Error).message}; retry later`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Enqueues one event; returns its id. Rejects with `EnqueueError` within `enqueueTimeoutMs`. */
  async enqueueEvent(event: IncomingEvent): Promise<string> {
    const e = withId(event);
    const id = String(e.id);
    const data: EventJobData = { event: e };
    // a job id that is a plain string of safe characters; others get BullMQ's own
    const jobId = /^[A-Za-z0-9._-]{1,64}$/.test(id) ? `ev-${id}` : undefined;
    await this.bounded(() => this.queue.add(JOB_EVENT, data, jobId ? { jobId } : {}));
    return id;
  }

  /**
   * Enqueues events as batch jobs of at most MAX_BATCH_EVENTS; returns their ids in order.
   * All the jobs go in one MULTI, so either every event is queued or none is.
   */
  async enqueueBatch(events: readonly IncomingEvent[]): Promise<string[]> {
    const withIds = events.map(withId);
    const jobs: { name: string; data: BatchJobData }[] = [];
    for (let i = 0; i < withIds.length; i += MAX_BATCH_EVENTS) {
      jobs.push({ name: JOB_BATCH, data: { events: withIds.slice(i, i + MAX_BATCH_EVENTS) } });
    }
    if (jobs.length > 0) await this.bounded(() => this.queue.addBulk(jobs));
    return withIds.map((e) => String(e.id));
  }

  /** Closes the queue's connection; bounded like an enqueue (a dead Redis cannot hold it open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const timer = setTimeout(() => void this.queue.disconnect().catch(() => {}), this.timeoutMs);
    try {
      await this.queue.close().catch(() => {});
    } finally {
      clearTimeout(timer);
      releaseBullConnection(this.connection);
    }
  }
}
