/**
 * The worker service in-process, against a real redis-server and embedded
 * ClickHouse: several workers on one queue, invalid input, retries,
 * backpressure, the eviction check and graceful shutdown.
 */
import { Queue, Worker, type Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { computeSessionRows, type SessionEvent } from '../../../src/buffer/durations.js';
import { observeScripts } from '../../../src/buffer/scripts.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { queryRows } from '../../../src/clickhouse/client.js';
import { loadConfig, type Config } from '../../../src/config.js';
import { normalizeEvent } from '../../../src/event/normalize.js';
import { Flusher } from '../../../src/flush/flusher.js';
import { generateEvents, prng } from '../../../src/generate/model.js';
import { createLogger } from '../../../src/ops/log.js';
import { Metrics } from '../../../src/ops/metrics.js';
import { checkRedisSafety } from '../../../src/ops/redis-safety.js';
import { waitUntilDrained } from '../../../src/queue/drain.js';
import { JOB_BATCH, JOB_EVENT } from '../../../src/queue/jobs.js';
import { Producer, type IncomingEvent } from '../../../src/queue/producer.js';
import { WorkerService, type Role } from '../../../src/queue/worker-service.js';
import { testRedis, useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: true });
const log = createLogger('silent');
let run = 0;
let running: WorkerService[] = [];
let opened: { close(): Promise<void> }[] = [];

afterEach(async () => {
  // a generous deadline: a flush still running after stop() could insert into the next test's table
  await Promise.all(running.map((w) => w.stop(30_000)));
  await Promise.all(opened.map((o) => o.close()));
  running = [];
  opened = [];
});

function setup(overrides: Partial<Config> = {}) {
  run += 1;
  const config: Config = {
    ...loadConfig({}),
    redisUrl: services.server.url,
    clickhouseDatabase: services.clickhouse.database,
    keyPrefix: `${services.server.prefix}w${run}`,
    queueName: `q${run}`,
    sweepIntervalMs: 50,
    flushIntervalMs: 100,
    workerLockMs: 2_000,
    ...overrides,
  };
  const buffer = new SessionBuffer(services.redis, config);
  const producer = new Producer({ redisUrl: config.redisUrl, queueName: config.queueName, prefix: config.queuePrefix, keepCompleted: 100 });
  const queue = new Queue(config.queueName, { connection: { url: config.redisUrl }, prefix: config.queuePrefix });
  opened.push(producer, queue);
  const worker = async (role: Role, owner = `${role}-${running.length}`): Promise<WorkerService> => {
    const metrics = new Metrics();
    const flusher =
      role === 'ingest'
        ? undefined
        : new Flusher(services.redis, buffer, services.clickhouse.ch, {
            owner,
            leaseMs: 2_000,
            flushMaxRows: config.flushMaxRows,
            flushMaxBytes: config.flushMaxBytes,
            flushIntervalMs: config.flushIntervalMs,
            metrics,
          });
    const service = new WorkerService({ config, role, buffer, ...(flusher ? { flusher } : {}), metrics, log, redis: { url: config.redisUrl, cluster: config.redisCluster } });
    await service.start();
    running.push(service);
    return service;
  };
  const idle = (timeoutMs = 30_000): Promise<void> => waitUntilDrained(queue, timeoutMs, 50);
  return { config, buffer, producer, queue, worker, idle };
}

async function truncate(): Promise<void> {
  await services.clickhouse.ch.client.command({ query: `TRUNCATE TABLE ${services.clickhouse.database}.events` });
}

/** The row of `id` once it is in ClickHouse (up to 10 s), or undefined. */
async function rowOnceVisible(id: string): Promise<{ duration: number | null } | undefined> {
  for (let i = 0; i < 100; i += 1) {
    const row = (await rowsById()).get(id);
    if (row) return row;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

async function rowsById(): Promise<Map<string, { duration: number | null; screenViews: number; n: number }>> {
  const rows = await queryRows<{ id: string; duration: number | null; screenViews: number; n: string | number }>(
    services.clickhouse.ch,
    `SELECT id, any(duration) AS duration, any(screenViews) AS screenViews, count() AS n FROM ${services.clickhouse.database}.events GROUP BY id`,
  );
  return new Map(rows.map((r) => [r.id, { duration: r.duration, screenViews: r.screenViews, n: Number(r.n) }]));
}

describe('WorkerService', () => {
  it('several workers consuming shuffled, concurrent jobs write exactly the rows of in-order processing', async () => {
    await truncate();
    const { producer, worker, idle, buffer, config } = setup({ workerConcurrency: 4 });
    await worker('all');
    await worker('ingest');
    await worker('ingest');
    const events = generateEvents({ sessions: 300, seed: 5, lateFraction: 0 });
    const random = prng(9);
    const shuffled = [...events].sort(() => random() - 0.5);
    // a mix of batch jobs and single-event jobs, enqueued concurrently, some enqueued twice (client retries)
    await Promise.all([
      ...Array.from({ length: Math.ceil(shuffled.length / 2 / 40) }, (_, i) => producer.enqueueBatch(shuffled.slice(i * 40, i * 40 + 40))),
      ...shuffled.slice(Math.floor(shuffled.length / 2)).map((e) => producer.enqueueEvent(e)),
      producer.enqueueBatch(shuffled.slice(0, 100)),
    ]);
    await idle();
    // drain as `replay --drain` does: the sessions are finalised as if the timeout had passed
    await buffer.sweep(Date.now() + config.sessionTimeoutMs + config.graceMs + 1);
    await running[0]?.stop(20_000);

    const bySession = new Map<string, SessionEvent[]>();
    for (const e of events) {
      const list = bySession.get(e.sessionId ?? '') ?? [];
      list.push({ id: e.id, createdAtMs: Date.parse(e.createdAt), kind: e.name === 'screen_view' ? 'v' : e.name === 'session_end' ? 'e' : 'o' });
      bySession.set(e.sessionId ?? '', list);
    }
    const rows = await rowsById();
    expect(rows.size).toBe(events.length);
    const wrong: string[] = [];
    for (const list of bySession.values()) {
      for (const [id, f] of computeSessionRows(list, config.sessionTimeoutMs)) {
        const r = rows.get(id);
        if (!r || r.n !== 1 || r.duration !== f.duration || r.screenViews !== f.screenViews) wrong.push(id);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('fails an invalid single-event job as unrecoverable with the validation message, and keeps it in the failed set', async () => {
    const { producer, queue, worker, idle } = setup();
    await worker('ingest');
    await producer.enqueueEvent({ id: 'bad-1', projectId: 'p', name: 'click', createdAt: 'yesterday' });
    await idle();
    const [failed] = await queue.getFailed();
    expect(failed?.failedReason).toContain('createdAt: must be an ISO-8601 string');
    expect(failed?.attemptsMade).toBe(1);
  });

  it('gathers the single-event jobs it holds at the same moment into shared ingest calls, each job keeping its own result', async () => {
    const { queue, worker, idle } = setup({ workerConcurrency: 8 });
    const event = (i: number) => ({ id: `e${i % 30}`, projectId: 'p', sessionId: `s${i % 5}`, name: i % 3 === 0 ? 'screen_view' : 'click', createdAt: 1_790_000_000_000 + i });
    // 40 jobs, 30 distinct events: jobs 30..39 repeat the events of jobs 0..9 (a retried enqueue)
    await queue.addBulk(Array.from({ length: 40 }, (_, i) => ({ name: JOB_EVENT, data: { event: event(i) }, opts: { jobId: `job-${i}` } })));
    let calls = 0;
    observeScripts((script) => {
      if (script === 'ingest') calls += 1;
    });
    try {
      await worker('ingest');
      await idle();
    } finally {
      observeScripts(undefined);
    }
    expect(calls).toBeLessThan(40);
    const results = new Map((await queue.getCompleted(0, 100)).map((j) => [j.id, j.returnvalue as { accepted: number; duplicates: number }]));
    expect(results.size).toBe(40);
    for (let i = 0; i < 10; i += 1) {
      const pair = [results.get(`job-${i}`), results.get(`job-${i + 30}`)];
      expect(pair.map((r) => (r?.accepted ?? 0) + (r?.duplicates ?? 0))).toEqual([1, 1]);
      expect(pair.filter((r) => r?.accepted === 1)).toHaveLength(1);
    }
    for (let i = 10; i < 30; i += 1) expect(results.get(`job-${i}`)).toMatchObject({ accepted: 1, duplicates: 0 });
  });

  it('processes the valid events of a batch job and reports the invalid ones by index', async () => {
    const { producer, queue, worker, idle, buffer } = setup();
    await worker('ingest');
    const ok = (id: string) => ({ id, projectId: 'p', sessionId: 's', name: 'click', createdAt: '2026-10-01T10:00:00Z' });
    // the missing createdAt is on purpose: the worker, not the compiler, must catch it here
    const noCreatedAt = { id: 'b', projectId: 'p', name: 'click' } as unknown as IncomingEvent;
    await producer.enqueueBatch([ok('a'), noCreatedAt, ok('c'), { id: 'd', projectId: '', name: 'x', createdAt: 1 }]);
    await idle();
    const [done] = await queue.getCompleted();
    expect(done?.returnvalue).toMatchObject({
      accepted: 2,
      rejected: [
        { index: 1, reason: expect.stringContaining('createdAt:') },
        { index: 3, reason: expect.stringContaining('projectId: must be a string of 1..64 characters') },
      ],
    });
    expect((await buffer.stats()).accepted).toBe(2);
  });

  it('holds the sweep clock for a job that is active and whose events are not yet in the buffer, also in a process that never saw it waiting', async () => {
    await truncate();
    const { producer, worker, buffer, config, queue } = setup({ graceMs: 1_000 });
    const t0 = Date.now() - 120_000;
    const view = (id: string, at: number) => ({ id, projectId: 'p', sessionId: 'active', name: 'screen_view', createdAt: t0 + at });
    const now = Date.now();
    await buffer.ingest([view('v1', 0), view('v3', 20_000)].map((e) => normalizeEvent(e, { receivedAtMs: now, maxFutureMs: config.maxFutureMs })), now);
    await producer.enqueueBatch([view('v2', 5_000)]);
    // a worker takes the job and is slow to ingest it (a stalled ingest call): the job is active, not waiting
    let release: () => void = () => {};
    const taken = new Promise<void>((resolveTaken) => {
      const slow = new Worker(config.queueName, async (job) => {
        resolveTaken();
        await new Promise<void>((r) => (release = r));
        const events = (job.data as { events: IncomingEvent[] }).events.map((e) => normalizeEvent(e, { receivedAtMs: job.timestamp, maxFutureMs: config.maxFutureMs }));
        await buffer.ingest(events, Date.now());
      }, { connection: { url: config.redisUrl }, prefix: config.queuePrefix });
      opened.push(slow);
    });
    await taken;
    await worker('flush'); // starts sweeping only now: it never sees the job waiting
    await new Promise((r) => setTimeout(r, 2_500)); // past the grace while the job is active
    release();
    await waitUntilDrained(queue, 30_000, 50);
    await buffer.sweep(Date.now() + config.sessionTimeoutMs + config.graceMs + 1);
    const v1 = await rowOnceVisible('v1');
    expect(v1?.duration).toBe(5_000);
    expect((await buffer.stats()).late ?? 0).toBe(0);
  });

  it('writes no row while an event that changes it waits in the queue past the grace (intake held), so it is not late', async () => {
    await truncate();
    const { producer, worker, idle, buffer, config } = setup({ graceMs: 3_000 });
    const t0 = Date.now() - 120_000;
    const view = (id: string, at: number) => ({ id, projectId: 'p', sessionId: 'held', name: 'screen_view', createdAt: t0 + at });
    await worker('flush');
    // v1 and v3 reach the buffer (as an ingest worker would put them), and at the same moment the
    // event between them is enqueued while no ingest worker runs: intake is held
    const now = Date.now();
    await buffer.ingest([view('v1', 0), view('v3', 20_000)].map((e) => normalizeEvent(e, { receivedAtMs: now, maxFutureMs: config.maxFutureMs })), now);
    await producer.enqueueBatch([view('v2', 5_000)]);
    await new Promise((r) => setTimeout(r, 5_000)); // longer than the grace: the flusher keeps sweeping
    await worker('ingest');
    await idle();
    const v1 = await rowOnceVisible('v1');
    expect(v1?.duration).toBe(5_000);
    expect((await buffer.stats()).late ?? 0).toBe(0);
  });

  it('stops taking jobs when the backlog passes the high watermark and resumes below the low one', async () => {
    await truncate();
    const concurrency = 2;
    const { producer, queue, worker, idle, buffer } = setup({ backlogHighWatermark: 20, backlogLowWatermark: 5, workerConcurrency: concurrency });
    const ingest = await worker('ingest');
    const click = (i: number) => ({ id: `c${i}`, projectId: 'p', sessionId: `s${i}`, name: 'click', createdAt: '2026-10-01T10:00:00Z' });
    await producer.enqueueBatch(Array.from({ length: 30 }, (_, i) => click(i)));
    await idle();
    await expect.poll(() => ingest.state, { timeout: 5_000 }).toBe('paused');
    // while paused, jobs wait; a fetch already under way may still deliver up to `concurrency` jobs
    await Promise.all(Array.from({ length: 20 }, (_, i) => producer.enqueueEvent(click(100 + i))));
    await new Promise((r) => setTimeout(r, 500));
    expect((await queue.getJobCounts('waiting')).waiting).toBeGreaterThanOrEqual(20 - concurrency);
    expect(ingest.state).toBe('paused');
    await worker('flush');
    await expect.poll(() => ingest.state, { timeout: 10_000 }).toBe('running');
    await idle();
    expect((await buffer.stats()).accepted).toBe(50);
  });

  it('holds a job while Redis answers OOM, takes no new jobs meanwhile, and ingests it once Redis has room', async () => {
    const { worker, buffer } = setup();
    const ingest = await worker('ingest');
    const events = Array.from({ length: 5 }, (_, i) => ({ id: `oom${i}`, projectId: 'p', sessionId: 's-oom', name: 'screen_view', createdAt: `2026-10-01T10:00:0${i}Z` }));
    const job = { id: 'oom-job', name: JOB_BATCH, data: { events }, timestamp: Date.now() } as unknown as Job;
    const original = ((await services.redis.config('GET', 'maxmemory')) as string[])[1] ?? '0';
    await services.redis.config('SET', 'maxmemory', '1');
    let done = false;
    try {
      const processing = ingest.process(job).finally(() => (done = true));
      // the job is held (not failed), and the worker stops taking jobs
      await expect.poll(() => ingest.state, { timeout: 5_000 }).toBe('paused');
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(false);
      await services.redis.config('SET', 'maxmemory', original);
      expect(await processing).toMatchObject({ accepted: 5, duplicates: 0 });
    } finally {
      await services.redis.config('SET', 'maxmemory', original);
    }
    expect((await buffer.stats()).accepted).toBe(5);
    await expect.poll(() => ingest.state, { timeout: 5_000 }).toBe('running');
  });

  it('shuts down without half-done work: active jobs finish, ready rows are flushed, leases released, held sessions kept', async () => {
    await truncate();
    const { producer, worker, idle, buffer } = setup();
    const all = await worker('all');
    await producer.enqueueBatch([
      { id: 'v1', projectId: 'p', sessionId: 'kept', name: 'screen_view', createdAt: '2026-10-01T10:00:00Z' },
      { id: 'c1', projectId: 'p', sessionId: 'kept', name: 'click', createdAt: '2026-10-01T10:00:01Z' },
    ]);
    await idle();
    const result = await all.stop(10_000);
    expect(result.timedOut).toBe(false);
    expect(all.state).toBe('stopped');
    expect([...(await rowsById()).keys()]).toEqual(['c1']);
    const backlog = await buffer.backlog();
    expect(backlog.reduce((n, b) => n + b.ready + b.inBatch, 0)).toBe(0);
    expect((await buffer.sessionView('p', 'kept')).state).toBe('open');
    for (let shard = 0; shard < buffer.settings.bufferShards; shard += 1) {
      expect(await services.redis.get(buffer.shardKeys(shard).lease)).toBeNull();
    }
  });
});

describe('Redis safety check', () => {
  it('refuses an evicting Redis with a message that says why and how to fix it, unless eviction is allowed', async () => {
    const evicting = await testRedis(['--maxmemory-policy', 'allkeys-lru']);
    const { Redis } = await import('ioredis');
    const client = new Redis(evicting.url);
    try {
      await expect(checkRedisSafety(client, { allowEviction: false, log })).rejects.toThrow(
        /maxmemory-policy is "allkeys-lru".*noeviction.*--allow-eviction/s,
      );
      await expect(checkRedisSafety(client, { allowEviction: true, log })).resolves.toBeUndefined();
      await expect(checkRedisSafety(services.redis, { allowEviction: false, log })).resolves.toBeUndefined();
    } finally {
      client.disconnect();
      await evicting.stop();
    }
  });
});
