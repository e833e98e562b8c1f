/**
 * The worker process: BullMQ jobs in, session buffer, sweeper, flusher.
 *
 * States (asserted on every transition):
 *
 *   created --start--> running --backlog > high watermark--> paused
 *   paused  --backlog < low watermark--> running
 *   running | paused --stop--> stopping --> stopped
 *
 * Roles: `ingest` consumes jobs and sweeps; `flush` sweeps and flushes
 * (leasing shards); `all` does everything. Sweeping is safe in any number of
 * processes: every sweep is an atomic script that re-checks what is due.
 *
 * Crash (kill -9): jobs being processed keep their BullMQ lock until it
 * expires (WORKER_LOCK_MS), then another worker retries them; event ids make
 * the retry a no-op for events already in the buffer. Held sessions and ready
 * rows are in Redis; leases expire and other flushers take the shards.
 *
 * Shutdown (stop): stop taking jobs and wait for the active ones, stop the
 * sweeper, flush what this process can lease until the deadline, release the
 * leases. Held sessions are never finalised early: they stay in Redis for the
 * other replicas or the next start.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { EventStatus } from '../buffer/scripts.js';
import { tally, type IngestResult, type SessionBuffer } from '../buffer/session-buffer.js';
import type { Config } from '../config.js';
import { backoffMs, failureKind } from '../errors.js';
import type { NormalizedEvent } from '../event/normalize.js';
import type { Flusher } from '../flush/flusher.js';
import type { Logger } from '../ops/log.js';
import { Coalescer } from '../ops/coalescer.js';
import type { Metrics } from '../ops/metrics.js';
import { bullConnection, releaseBullConnection, type RedisTarget } from '../ops/redis.js';
import { JOB_EVENT, parseJob, type JobResult } from './jobs.js';
import { sweepClock } from './sweep-clock.js';

export type Role = 'all' | 'ingest' | 'flush';
export type WorkerState = 'created' | 'running' | 'paused' | 'stopping' | 'stopped';

const TRANSITIONS: Record<WorkerState, readonly WorkerState[]> = {
  created: ['running', 'stopping'],
  running: ['paused', 'stopping'],
  paused: ['running', 'stopping'],
  stopping: ['stopped'],
  stopped: [],
};

export interface WorkerServiceDeps {
  config: Config;
  role: Role;
  buffer: SessionBuffer;
  /** Required for roles `all` and `flush`. */
  flusher?: Flusher;
  metrics: Metrics;
  log: Logger;
  /** Where BullMQ connects (the same Redis or cluster as the buffer). */
  redis: RedisTarget;
}

/**
 * The events of the jobs a worker holds at the same moment (up to its
 * concurrency) go to Redis in one ingest call per shard: a call leaves at once
 * when none is in flight, and what arrives meanwhile goes together when it
 * returns (ops/coalescer.ts). A single-event job then shares the per-call
 * cost with its neighbours; each job still gets its own events' results.
 */
const COALESCE_MAX_EVENTS = 5_000;
const COALESCE_WINDOW_MS = 20;

/** How long a job is held in place through Redis connection trouble before it fails to BullMQ's retry. */
const TRANSIENT_HOLD_MS = 60_000;

/** The waits between a held job's retries: short and capped, so it gets in before its neighbours' grace ends. */
const HELD_RETRY = { minMs: 10, baseMs: 50, maxMs: 490 } as const;

/** The longest wait a failing loop (sweep, flush, gate) adds to its interval, ms. */
const LOOP_BACKOFF_MAX_MS = 10_000;

/** The flush loop ticks at FLUSH_INTERVAL_MS, but at least this often (a tick flushes only shards that are due). */
const FLUSH_TICK_MAX_MS = 250;

/** BullMQ checks for stalled jobs twice per lock period, and not more often than this. */
const STALLED_CHECK_MIN_MS = 1_000;

export class WorkerService {
  private stateValue: WorkerState = 'created';
  private bull: Worker | undefined;
  private loops: Promise<void>[] = [];
  private lastBacklog = 0;
  /** Jobs of this worker held because Redis answered OOM: no new jobs are taken while any is. */
  private jobsWaitingForRoom = 0;
  /** BullMQ's connection: options, or (on a cluster) a client of ours that BullMQ does not close. */
  private connection?: ReturnType<typeof bullConnection>;
  /** Reads the queue's oldest waiting job for the sweep clock (every role sweeps). */
  private waiting?: { queue: Queue; connection: ReturnType<typeof bullConnection> };

  private readonly coalescer: Coalescer<NormalizedEvent, EventStatus>;

  constructor(private readonly deps: WorkerServiceDeps) {
    if (deps.role !== 'ingest' && !deps.flusher) throw new Error(`role ${deps.role} needs a flusher`);
    this.coalescer = new Coalescer((events) => deps.buffer.ingestEach(events, Date.now()), { maxEvents: COALESCE_MAX_EVENTS, windowMs: COALESCE_WINDOW_MS });
  }

  get state(): WorkerState {
    return this.stateValue;
  }

  /** Rows waiting for ClickHouse at the last backlog check. */
  get backlogRows(): number {
    return this.lastBacklog;
  }

  private transition(to: WorkerState): void {
    const from = this.stateValue;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`worker state: ${from} -> ${to} is not a transition`);
    this.stateValue = to;
    this.deps.log.info({ from, to }, 'worker state');
  }

  private get active(): boolean {
    return this.stateValue === 'running' || this.stateValue === 'paused';
  }

  async start(): Promise<void> {
    const { config, role } = this.deps;
    this.transition('running');
    if (role !== 'flush') {
      this.connection = bullConnection(this.deps.redis);
      this.bull = new Worker(config.queueName, (job) => this.process(job), {
        connection: this.connection,
        prefix: config.queuePrefix,
        concurrency: config.workerConcurrency,
        lockDuration: config.workerLockMs,
        // processing is idempotent (ids are deduplicated in the buffer), so a job whose
        // worker died may be retaken several times; BullMQ's default of 1 would fail it
        maxStalledCount: config.workerMaxStalled,
        stalledInterval: Math.max(STALLED_CHECK_MIN_MS, Math.floor(config.workerLockMs / 2)),
      });
      this.bull.on('failed', (job, err) => {
        const final = job === undefined || job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError';
        this.deps.metrics.jobsFailed.inc({ final: String(final) });
        this.deps.log.warn({ jobId: job?.id, attemptsMade: job?.attemptsMade, err }, 'job failed');
      });
      this.bull.on('error', (err) => this.deps.log.error({ err }, 'queue error'));
    }
    const waitingConnection = bullConnection(this.deps.redis, 'producer');
    this.waiting = { connection: waitingConnection, queue: new Queue(config.queueName, { connection: waitingConnection, prefix: config.queuePrefix }) };
    this.waiting.queue.on('error', () => {}); // the sweep that reads it reports the failure
    this.loops.push(this.every(config.sweepIntervalMs, () => this.sweepAndCheck(), 'sweep'));
    if (role !== 'ingest') this.loops.push(this.every(Math.min(config.flushIntervalMs, FLUSH_TICK_MAX_MS), () => this.flushOnce(), 'flush'));
  }

  /** Runs fn every intervalMs while the service is active; errors are logged and retried. */
  private async every(intervalMs: number, fn: () => Promise<void>, name: string): Promise<void> {
    let failures = 0;
    while (this.active) {
      try {
        await fn();
        failures = 0;
      } catch (err) {
        failures += 1;
        this.deps.log.error({ loop: name, failures, err }, 'loop iteration failed');
      }
      // jittered, so replicas that failed together (a Redis restart) do not retry together
      await sleep(failures > 0 ? intervalMs + backoffMs(failures - 1, intervalMs, LOOP_BACKOFF_MAX_MS) : intervalMs);
    }
  }

  /** One job: validate every event, ingest the valid ones in one call per shard. */
  async process(job: Job): Promise<JobResult> {
    const { metrics, config, buffer } = this.deps;
    const { valid, rejected } = parseJob(job, config.maxFutureMs);
    metrics.eventsRejected.inc(rejected.length);
    if (job.name === JOB_EVENT && rejected[0]) throw new UnrecoverableError(rejected[0].reason);
    if (rejected.length > 0) this.deps.log.warn({ jobId: job.id, rejected: rejected.length, first: rejected[0]?.reason }, 'batch had invalid events');

    const result = valid.length > 0 ? await this.ingestHeld(valid, job) : { accepted: 0, duplicates: 0, late: 0 };
    metrics.eventsIngested.inc(result.accepted);
    metrics.eventsDuplicate.inc(result.duplicates);
    metrics.eventsLate.inc(result.late);
    return { ...result, rejected };
  }

  /**
   * Ingests, holding the job in place through two kinds of passing trouble,
   * so that its events are not sent to the back of the queue (a BullMQ retry
   * would be), where they could arrive after their neighbours were written:
   *
   * - Redis at maxmemory (noeviction answers OOM): retried with short waits,
   *   and the worker takes no new jobs until its held jobs are in. Nothing
   *   was written by the refused call: a script's first write is where Redis
   *   refuses it.
   * - the connection dropped (a Redis restart or failover): retried until
   *   TRANSIENT_HOLD_MS has passed; the call may have run before the drop,
   *   which is safe because ids are deduplicated.
   */
  private async ingestHeld(valid: readonly NormalizedEvent[], job: Job): Promise<IngestResult> {
    const { log, metrics } = this.deps;
    let waitingForRoom = false;
    const started = Date.now();
    try {
      for (let attempt = 0; ; attempt += 1) {
        try {
          const result = tally(await this.coalescer.add(valid));
          if (attempt > 0) log.info({ jobId: job.id, attempts: attempt + 1, heldMs: Date.now() - started }, 'held job ingested');
          return result;
        } catch (err) {
          if (!this.active) throw err;
          const kind = failureKind(err);
          if (kind === 'out-of-memory') {
            metrics.redisOom.inc();
            if (!waitingForRoom) {
              waitingForRoom = true;
              this.jobsWaitingForRoom += 1;
            }
            if (this.stateValue === 'running') {
              log.warn({ jobId: job.id }, 'Redis is at maxmemory (OOM): holding jobs and retrying; no new jobs until they are in');
              this.transition('paused');
              metrics.backpressure.set(1);
              void this.bull?.pause(true);
            }
          } else if (kind !== 'transient' || Date.now() - started > TRANSIENT_HOLD_MS) {
            throw err;
          } else if (attempt === 0) {
            log.warn({ jobId: job.id, err }, 'Redis connection trouble: holding the job and retrying');
          }
          await sleep(HELD_RETRY.minMs + backoffMs(attempt, HELD_RETRY.baseMs, HELD_RETRY.maxMs));
        }
      }
    } finally {
      if (waitingForRoom) this.jobsWaitingForRoom -= 1;
    }
  }

  private async sweepAndCheck(): Promise<void> {
    const { buffer, metrics, config, log } = this.deps;
    const now = Date.now();
    const swept = await buffer.sweep(this.waiting ? await sweepClock(buffer.redis, this.waiting.queue, now, config.sweepHoldMaxMs) : now);
    metrics.rowsEmitted.inc(swept.emitted);
    metrics.sessionsFinalised.inc(swept.finalised);

    const backlog = await buffer.backlog();
    let rows = 0;
    let sessions = 0;
    let lag = 0;
    let dead = 0;
    for (const b of backlog) {
      dead += b.dead;
      rows += b.ready + b.inBatch;
      sessions += b.heldSessions;
      if (b.nextDueAt !== null) lag = Math.max(lag, now - b.nextDueAt);
      metrics.backlogRows.set({ shard: String(b.shard) }, b.ready + b.inBatch);
    }
    metrics.heldSessions.set(sessions);
    metrics.heldEvents.set((await buffer.stats()).held ?? 0);
    metrics.sweepLagSeconds.set(lag / 1000);
    metrics.deadLetterRows.set(dead);
    this.lastBacklog = rows;

    if (!this.bull) return;
    if (this.stateValue === 'running' && rows >= config.backlogHighWatermark) {
      this.transition('paused');
      await this.bull.pause(true);
      metrics.backpressure.set(1);
      log.warn({ backlogRows: rows, highWatermark: config.backlogHighWatermark }, 'backpressure: stopped taking jobs');
    } else if (this.stateValue === 'paused' && this.jobsWaitingForRoom === 0 && rows <= config.backlogLowWatermark) {
      this.transition('running');
      this.bull.resume();
      metrics.backpressure.set(0);
      log.info({ backlogRows: rows, lowWatermark: config.backlogLowWatermark }, 'backpressure released: taking jobs again');
    }
  }

  private async flushOnce(): Promise<void> {
    await this.deps.flusher?.tick();
  }

  /** Graceful stop: finish active jobs, flush what can be leased until the deadline, release leases. */
  async stop(deadlineMs = this.deps.config.shutdownTimeoutMs): Promise<{ flushedRows: number; timedOut: boolean }> {
    if (!this.active && this.stateValue !== 'created') return { flushedRows: 0, timedOut: false };
    const deadline = Date.now() + deadlineMs;
    this.transition('stopping');
    /** Waits for `work` until the deadline; false when the deadline came first (the work is then abandoned). */
    const within = async (work: Promise<unknown>): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        work.then(
          () => true,
          () => true,
        ),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(timer);
      return inTime;
    };
    let timedOut = false;
    // a dead Redis makes every step wait: each one is bounded by the same deadline
    if (this.bull && !(await within(this.bull.close()))) {
      timedOut = true;
      void this.bull.close(true).catch(() => {});
    }
    if (this.connection) releaseBullConnection(this.connection);
    if (!(await within(Promise.all(this.loops)))) timedOut = true;
    if (this.waiting) {
      const { queue, connection } = this.waiting;
      if (!(await within(queue.close()))) void queue.disconnect().catch(() => {});
      releaseBullConnection(connection);
    }
    let flushedRows = 0;
    const flusher = this.deps.flusher;
    if (flusher && !timedOut) {
      let cut = false;
      const flushAll = (async () => {
        // the flag ends the loop at the deadline: no lease is taken after it, or after release()
        while (!cut) {
          const { rows } = await flusher.tick(true);
          flushedRows += rows;
          if (rows === 0) return;
        }
      })();
      flushAll.catch(() => {});
      if (!(await within(flushAll))) timedOut = true;
      cut = true;
      if (!(await within(flusher.release()))) timedOut = true;
    }
    if (timedOut) this.deps.log.warn({ deadlineMs }, 'shutdown deadline passed: what was not flushed stays in Redis for the next flusher');
    this.transition('stopped');
    return { flushedRows, timedOut };
  }
}

